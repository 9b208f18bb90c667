// SPDX-License-Identifier: MIT
/*
 * What the native units share: the object handle, the watch a batch source
 * is, the error helpers, and the table of functions each unit exports.
 */
#ifndef TRACEPKT_ADDON_H
#define TRACEPKT_ADDON_H

#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "napi.h"

/* ---- errors (errors.c) ---- */

/*
 * libbpf's messages (the verifier's log among them) are kept per thread: a
 * load on a worker thread and a call on the main one never mix their logs.
 * log_reset() empties the calling thread's, log_current() reads it,
 * log_take() hands over a copy (freed by the caller) for another thread.
 */
int collect_print(enum libbpf_print_level level, const char *fmt, va_list ap);
void log_reset(void);
const char *log_current(void);
char *log_take(void);

/*
 * Handles are externals with a type tag, checked on every call: an object
 * handle, a ring or a netlink socket is never taken for another.
 */
extern const napi_type_tag OBJECT_TAG, RING_TAG, NETLINK_TAG;
/* A tagged handle for data (finalized by fin), or NULL with an exception pending: then data is the caller's to free. */
napi_value make_handle(napi_env env, void *data, napi_finalize fin, const napi_type_tag *tag);
/* The data of a handle carrying tag (or tag2, when not NULL), or NULL with a TypeError thrown. */
void *get_handle(napi_env env, napi_value v, const napi_type_tag *tag, const napi_type_tag *tag2, const char *what);

/* ---- the object handle (object.c) ---- */

#define MAX_OBJECT_LINKS 1024
#define MAX_TARGET_FDS 64

struct object {
	struct bpf_object *obj;
	struct bpf_link *links[MAX_OBJECT_LINKS];
	int nr_links;
	int link_fds[MAX_OBJECT_LINKS]; /* raw links created by syscall (netfilter) */
	int nr_link_fds;
	int target_fds[MAX_TARGET_FDS]; /* programs other fexit programs of this object trace (their fds, held to load) */
	int nr_target_fds;
	int loading;     /* a loadAsync is running on a worker thread: hands off */
	int close_after; /* close() came while loading */
	void *image;     /* opened from memory: the ELF bytes, kept until close (libbpf reads them while open) */
};

void object_close(struct object *o);
struct object *get_object(napi_env env, napi_value v);
struct bpf_program *get_program(napi_env env, struct object *o, napi_value v);
struct bpf_map *get_map(napi_env env, struct object *o, napi_value v);

/* ---- batches and the watches that fill them (watch.c) ---- */

struct batch {
	char *data;
	size_t len, cap;
	size_t limit; /* stop adding records past this many bytes; 0: no limit */
	size_t records; /* records in data now */
	double lost;  /* records the source gave up that no batch could hold (out of memory): reported with the ring's */
};

/*
 * A source of batches watched on Node's event loop: the ring buffer's epoll
 * fd or a netlink socket. drain() fills the batch; the callback gets it.
 */
struct watch {
	napi_env env;
	uv_poll_t poll;
	napi_ref callback;
	napi_async_context async;
	struct batch batch;
	int (*drain)(struct watch *w);
	void (*release)(struct watch *w);
	int closed;    /* closeWatch() or the finalizer asked to close */
	int uv_closed; /* libuv is done with the handle */
	int finalized; /* JavaScript dropped its handle */
};

int batch_add(struct batch *b, const void *data, size_t size);
/* Starts watching fd; on failure releases and frees w, and returns NULL with an exception pending. */
napi_value watch_start(napi_env env, struct watch *w, int fd, napi_value callback, const char *name, const napi_type_tag *tag);
/* A watch handle of the kind tag names (NULL: either kind). */
struct watch *get_watch(napi_env env, napi_value v, const napi_type_tag *tag);

/* ---- what each unit exports to JavaScript, a table ending in { NULL } ---- */


extern const struct addon_fn object_fns[], links_fns[], watch_fns[], ring_fns[], netns_fns[], netlink_fns[], programs_fns[], pcap_fns[];

#endif
