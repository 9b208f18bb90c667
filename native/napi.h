// SPDX-License-Identifier: MIT
/*
 * The Node-API helpers every native unit uses, apart from addon.h so that a
 * unit that must not see libbpf's headers (pcap.c: libpcap's classic struct
 * bpf_insn and the kernel's eBPF one share a name) can have them too.
 */
#ifndef TRACEPKT_NAPI_H
#define TRACEPKT_NAPI_H

#include <node_api.h>
#include <stddef.h>

/* An Error "op: strerror" with .op, .errno and, where log is not NULL, .log (errors.c). */
napi_value errno_error(napi_env env, const char *op, int err, const char *log);
napi_value throw_errno(napi_env env, const char *op, int err, const char *log);
napi_value throw_type(napi_env env, const char *msg);
int get_string(napi_env env, napi_value v, char *buf, size_t size);

#define ARGS(n)                                                                 \
	size_t argc = n;                                                        \
	napi_value argv[n];                                                     \
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok ||  \
	    argc < n)                                                           \
		return throw_type(env, "wrong number of arguments");

/* A unit's exports: name and function, ending with { NULL, NULL } (registered by addon.c). */
struct addon_fn {
	const char *name;
	napi_callback fn;
};

#endif
