// SPDX-License-Identifier: MIT
/*
 * Batches on Node's event loop: a uv_poll_t watches a source's fd (the ring
 * buffer's epoll fd, a netlink socket); when it fires, everything pending is
 * drained into one batch and JavaScript gets a single Buffer per wake-up.
 * No thread, no per-event call. Batch format: [u32 length][record][padding
 * to 4 bytes], repeated.
 */
#include "addon.h"

/*
 * Records handed to JavaScript per wake-up at most: it holds a batch's
 * events at once, so under a flood this bounds its memory; what remains in
 * the ring comes on the next turn of the event loop (the ring's fd stays
 * readable).
 */
#define BATCH_MAX (256 * 1024)

/* Appends [u32 length][record], padded so the next length is 4-aligned. */
int batch_add(struct batch *b, const void *data, size_t size)
{
	size_t need = (4 + size + 3) & ~(size_t)3;
	uint32_t len = size;

	if (b->len + need > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
		char *grown;

		while (cap < b->len + need)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown)
			return -ENOMEM;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, &len, 4);
	memcpy(b->data + b->len + 4, data, size);
	memset(b->data + b->len + 4 + size, 0, need - 4 - size);
	b->len += need;
	b->records++;
	return 0;
}

/* Drains the source into a Buffer of at most `limit` bytes of records (0: everything); returns records read. */
static int watch_drain(struct watch *w, napi_value *out, size_t limit)
{
	int n;

	w->batch.len = 0;
	w->batch.records = 0;
	w->batch.limit = limit;
	n = w->drain(w);
	if (n < 0)
		return n;
	if (w->batch.len == 0)
		return 0;
	if (napi_create_buffer_copy(w->env, w->batch.len, w->batch.data, NULL, out) != napi_ok) {
		napi_value pending;

		/* Read from the source, handed to nobody: every record is lost, and said so (n counts a full ring as 1). */
		w->batch.lost += w->batch.records;
		napi_get_and_clear_last_exception(w->env, &pending);
		return 0;
	}
	return n;
}

static void watch_on_readable(uv_poll_t *poll, int status, int events)
{
	struct watch *w = poll->data;
	napi_handle_scope scope;
	napi_value batch, callback, global, result;
	int n;

	if (w->closed || napi_open_handle_scope(w->env, &scope) != napi_ok)
		return;
	n = watch_drain(w, &batch, BATCH_MAX);
	if (n > 0) {
		if (napi_get_reference_value(w->env, w->callback, &callback) != napi_ok || !callback ||
		    napi_get_global(w->env, &global) != napi_ok) {
			w->batch.lost += w->batch.records; /* nobody to hand them to */
		} else if (napi_make_callback(w->env, w->async, global, callback, 1, &batch, &result) == napi_pending_exception) {
			napi_value error;

			/* onBatch threw: report it as Node reports any uncaught error, never leave it pending here. */
			if (napi_get_and_clear_last_exception(w->env, &error) == napi_ok)
				napi_fatal_exception(w->env, error);
		}
	}
	napi_close_handle_scope(w->env, scope);
}

/* Freed only once both libuv and JavaScript are done with it. */
static void watch_free_if_unused(struct watch *w)
{
	if (!w->uv_closed || !w->finalized)
		return;
	free(w->batch.data);
	free(w);
}

static void watch_on_uv_closed(uv_handle_t *handle)
{
	struct watch *w = handle->data;

	w->uv_closed = 1;
	watch_free_if_unused(w);
}

static void watch_close(struct watch *w)
{
	if (w->closed)
		return;
	w->closed = 1;
	uv_poll_stop(&w->poll);
	w->release(w);
	napi_delete_reference(w->env, w->callback);
	napi_async_destroy(w->env, w->async);
	uv_close((uv_handle_t *)&w->poll, watch_on_uv_closed);
}

static void watch_finalize(napi_env env, void *data, void *hint)
{
	struct watch *w = data;

	watch_close(w);
	w->finalized = 1;
	watch_free_if_unused(w);
}

/* Starts watching fd; the caller has set drain, release and its own state. */
napi_value watch_start(napi_env env, struct watch *w, int fd, napi_value callback, const char *name, const napi_type_tag *tag)
{
	uv_loop_t *loop = NULL;
	napi_value handle, resource;
	int err = 0;

	w->env = env;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok || (err = uv_poll_init(loop, &w->poll, fd)) < 0) {
		w->release(w);
		free(w);
		return throw_errno(env, "uv_poll_init", loop ? -err : EINVAL, NULL);
	}
	w->poll.data = w;
	if (napi_create_reference(env, callback, 1, &w->callback) != napi_ok ||
	    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource) != napi_ok ||
	    napi_async_init(env, NULL, resource, &w->async) != napi_ok) {
		err = -ENOMEM;
		goto fail;
	}
	if ((err = uv_poll_start(&w->poll, UV_READABLE, watch_on_readable)) < 0)
		goto fail;
	if (!(handle = make_handle(env, w, watch_finalize, tag))) {
		napi_value pending;

		napi_get_and_clear_last_exception(env, &pending); /* thrown again below, once everything is undone */
		err = -ENOMEM;
		goto fail;
	}
	return handle;
fail:
	/* Nobody holds the watch: close it as the finalizer would, libuv frees it once it lets go. */
	w->finalized = 1;
	w->closed = 1;
	uv_poll_stop(&w->poll);
	w->release(w);
	if (w->callback)
		napi_delete_reference(env, w->callback);
	if (w->async)
		napi_async_destroy(env, w->async);
	uv_close((uv_handle_t *)&w->poll, watch_on_uv_closed);
	return throw_errno(env, "watching a file descriptor", -err, NULL);
}

struct watch *get_watch(napi_env env, napi_value v, const napi_type_tag *tag)
{
	return get_handle(env, v, tag ? tag : &RING_TAG, tag ? NULL : &NETLINK_TAG, tag == &NETLINK_TAG ? "not a netlink socket handle" : tag == &RING_TAG ? "not a ring buffer handle" : "not a watch handle");
}

/* drain(watch) -> Buffer or null: reads now, without waiting for a wake-up */
static napi_value js_drain(napi_env env, napi_callback_info info)
{
	struct watch *w;
	napi_value batch = NULL;
	int n;
	ARGS(1);

	if (!(w = get_watch(env, argv[0], NULL)))
		return NULL;
	if (w->closed) {
		napi_get_null(env, &batch);
		return batch;
	}
	n = watch_drain(w, &batch, 0); /* an explicit drain (close) takes everything */
	if (n < 0)
		return throw_errno(env, "drain", n, NULL);
	if (n == 0)
		napi_get_null(env, &batch);
	return batch;
}

/* closeWatch(watch): stops watching and frees the source (ring, socket) */
static napi_value js_close_watch(napi_env env, napi_callback_info info)
{
	struct watch *w;
	ARGS(1);

	if ((w = get_watch(env, argv[0], NULL)))
		watch_close(w);
	return NULL;
}

/* watchLost(watch) -> number: records the source gave up that no batch could hold (out of memory) */
static napi_value js_watch_lost(napi_env env, napi_callback_info info)
{
	struct watch *w;
	napi_value lost;
	ARGS(1);

	if (!(w = get_watch(env, argv[0], NULL)))
		return NULL;
	napi_create_double(env, w->batch.lost, &lost);
	return lost;
}

const struct addon_fn watch_fns[] = {
	{ "drain", js_drain },
	{ "closeWatch", js_close_watch },
	{ "watchLost", js_watch_lost },
	{ NULL, NULL },
};
