// SPDX-License-Identifier: MIT
/*
 * tcpdump's filter language, compiled by libpcap: compileFilter(expr,
 * linktype) -> the classic BPF program as a Buffer of struct bpf_insn
 * (8 bytes each: code, jt, jf, k, host order). No capture is opened: a
 * "dead" handle of the link type the hook sees is enough to compile. What
 * runs in the kernel is decided in TypeScript (src/filter/).
 */
/* Not addon.h: it brings libbpf's headers, whose eBPF struct bpf_insn libpcap's classic one clashes with. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pcap/pcap.h>
#include "napi.h"

/* Big enough for any packet: `greater`/`less` and the return value do not depend on it. */
#define FILTER_SNAPLEN 262144

static napi_value js_compile_filter(napi_env env, napi_callback_info info)
{
	char expr[4096], kind[16], message[PCAP_ERRBUF_SIZE + 64];
	struct bpf_program prog;
	napi_value out;
	void *data;
	pcap_t *p;
	int linktype;
	ARGS(2);

	if (!get_string(env, argv[0], expr, sizeof(expr)))
		return throw_type(env, "bad filter expression (at most 4095 bytes)");
	if (!get_string(env, argv[1], kind, sizeof(kind)))
		return throw_type(env, "bad link type");
	if (!strcmp(kind, "raw"))
		linktype = DLT_RAW;
	else if (!strcmp(kind, "ethernet"))
		linktype = DLT_EN10MB;
	else
		return throw_type(env, "link type must be \"raw\" or \"ethernet\"");
	p = pcap_open_dead(linktype, FILTER_SNAPLEN);
	if (!p)
		return throw_errno(env, "pcap_open_dead", ENOMEM, NULL);
	if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		snprintf(message, sizeof(message), "%s", pcap_geterr(p));
		pcap_close(p);
		napi_throw_error(env, "EPCAP", message);
		return NULL;
	}
	pcap_close(p);
	if (napi_create_buffer_copy(env, prog.bf_len * sizeof(struct bpf_insn), prog.bf_insns, &data, &out) != napi_ok)
		out = NULL;
	pcap_freecode(&prog);
	return out;
}

const struct addon_fn pcap_fns[] = {
	{ "compileFilter", js_compile_filter },
	{ NULL, NULL },
};
