// SPDX-License-Identifier: MIT
/*
 * The ring buffer reader: libbpf's ring_buffer consumed into a watch's batch.
 */
#include "addon.h"

struct ring {
	struct watch w; /* first: a ring is a watch */
	struct ring_buffer *rb;
};

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct batch *b = &((struct ring *)ctx)->w.batch;
	/* Out of memory for this record: libbpf has consumed it, so it is counted as lost and the rest go on. */
	if (batch_add(b, data, size))
		b->lost++;
	/* libbpf has consumed this record already; a negative return stops after it */
	return b->limit && b->len >= b->limit ? -EAGAIN : 0;
}

static int ring_drain(struct watch *w)
{
	int n = ring_buffer__consume(((struct ring *)w)->rb);

	return n == -EAGAIN ? 1 : n; /* the batch is full: the rest next time */
}

static void ring_release(struct watch *w)
{
	struct ring *r = (struct ring *)w;

	ring_buffer__free(r->rb);
	r->rb = NULL;
}

/* openRing(handle, map, onBatch) -> ring; onBatch(Buffer) per wake-up */
static napi_value js_open_ring(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_map *map;
	struct ring *r;
	napi_valuetype type;
	int err;
	ARGS(3);

	if (!(o = get_object(env, argv[0])) || !(map = get_map(env, o, argv[1])))
		return NULL;
	if (napi_typeof(env, argv[2], &type) != napi_ok || type != napi_function)
		return throw_type(env, "onBatch must be a function");
	r = calloc(1, sizeof(*r));
	if (!r)
		return throw_errno(env, "calloc", ENOMEM, NULL);
	r->rb = ring_buffer__new(bpf_map__fd(map), ring_sample, r, NULL);
	err = libbpf_get_error(r->rb);
	if (err) {
		free(r);
		return throw_errno(env, "ring_buffer__new", err, NULL);
	}
	r->w.drain = ring_drain;
	r->w.release = ring_release;
	return watch_start(env, &r->w, ring_buffer__epoll_fd(r->rb), argv[2], "tracepkt:ring", &RING_TAG);
}

const struct addon_fn ring_fns[] = {
	{ "openRing", js_open_ring },
	{ NULL, NULL },
};
