// SPDX-License-Identifier: MIT
/*
 * A thin Node-API layer over the system libbpf. It opens a BPF object, lets
 * JavaScript configure it (globals, map sizes, autoload, program types),
 * loads it, attaches programs as fd-owned links, reads a ring buffer and
 * netlink sockets, and moves the calling thread between network namespaces.
 * It holds no policy: what to load and what to match is decided in
 * TypeScript (src/bpf/object.ts).
 *
 * One unit per concern: object.c (open, configure, load, maps), links.c,
 * watch.c (batches on the event loop), ring.c, netlink.c, netns.c, errors.c,
 * programs.c (what is attached to interfaces), pcap.c (libpcap's filter compiler).
 */
#include "addon.h"

static napi_value init(napi_env env, napi_value exports)
{
	const struct addon_fn *units[] = { object_fns, links_fns, watch_fns, ring_fns, netns_fns, netlink_fns, programs_fns, pcap_fns };
	size_t i;

	libbpf_set_print(collect_print);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		const struct addon_fn *f;

		for (f = units[i]; f->name; f++) {
			napi_value fn;

			if (napi_create_function(env, f->name, NAPI_AUTO_LENGTH, f->fn, NULL, &fn) != napi_ok ||
			    napi_set_named_property(env, exports, f->name, fn) != napi_ok)
				return NULL; /* the pending exception fails the require() */
		}
	}
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
