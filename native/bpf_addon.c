// SPDX-License-Identifier: MIT
/*
 * A thin Node-API layer over the system libbpf. It opens a BPF object, lets
 * JavaScript configure it (globals, map sizes, autoload, program types),
 * loads it, attaches programs as fd-owned links, and reads a ring buffer.
 * It holds no policy: what to load and what to match is decided in
 * TypeScript (src/bpf/object.ts).
 *
 * Errors are thrown as Error objects carrying `op` (the libbpf call that
 * failed), `errno` (positive) and, for load, `log` (libbpf's and the
 * verifier's messages).
 *
 * Reading: a uv_poll_t watches ring_buffer__epoll_fd(); when it fires,
 * ring_buffer__consume() drains every record into one batch and JavaScript
 * gets a single Buffer per wake-up. No thread, no per-event call.
 * Batch format: [u32 length][record][padding to 4 bytes], repeated.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define MAX_LINKS 64

/* ---- libbpf's messages: kept, not printed, so errors can carry them ---- */

static char log_buf[64 * 1024];
static size_t log_len;

static int collect_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	if (log_len >= sizeof(log_buf) - 1)
		return 0;
	n = vsnprintf(log_buf + log_len, sizeof(log_buf) - log_len, fmt, ap);
	if (n > 0)
		log_len += (size_t)n < sizeof(log_buf) - log_len ? (size_t)n : sizeof(log_buf) - log_len - 1;
	return 0;
}

static void log_reset(void)
{
	log_len = 0;
	log_buf[0] = 0;
}

/* ---- error helpers ---- */

static napi_value throw_errno(napi_env env, const char *op, int err, int with_log)
{
	char msg[256];
	napi_value error, message, value;

	if (err < 0)
		err = -err;
	if (err == 0)
		err = EINVAL;
	snprintf(msg, sizeof(msg), "%s: %s", op, strerror(err));
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
	napi_create_error(env, NULL, message, &error);
	napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &value);
	napi_set_named_property(env, error, "op", value);
	napi_create_int32(env, err, &value);
	napi_set_named_property(env, error, "errno", value);
	if (with_log) {
		napi_create_string_utf8(env, log_buf, log_len, &value);
		napi_set_named_property(env, error, "log", value);
	}
	napi_throw(env, error);
	return NULL;
}

static napi_value throw_type(napi_env env, const char *msg)
{
	napi_throw_type_error(env, NULL, msg);
	return NULL;
}

#define ARGS(n)                                                                 \
	size_t argc = n;                                                        \
	napi_value argv[n];                                                     \
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok ||  \
	    argc < n)                                                           \
		return throw_type(env, "wrong number of arguments");

static int get_string(napi_env env, napi_value v, char *buf, size_t size)
{
	size_t len;

	return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok && len < size - 1;
}

/* ---- the object handle ---- */

struct object {
	struct bpf_object *obj;
	struct bpf_link *links[MAX_LINKS];
	int nr_links;
	int link_fds[MAX_LINKS]; /* raw links created by syscall (netfilter) */
	int nr_link_fds;
};

static void object_close(struct object *o)
{
	int i;

	for (i = 0; i < o->nr_links; i++)
		bpf_link__destroy(o->links[i]);
	o->nr_links = 0;
	for (i = 0; i < o->nr_link_fds; i++)
		close(o->link_fds[i]);
	o->nr_link_fds = 0;
	if (o->obj)
		bpf_object__close(o->obj);
	o->obj = NULL;
}

static void object_finalize(napi_env env, void *data, void *hint)
{
	object_close(data);
	free(data);
}

static struct object *get_object(napi_env env, napi_value v)
{
	struct object *o = NULL;

	if (napi_get_value_external(env, v, (void **)&o) != napi_ok || !o) {
		throw_type(env, "not a BPF object handle");
		return NULL;
	}
	if (!o->obj) {
		throw_type(env, "BPF object is closed");
		return NULL;
	}
	return o;
}

static struct bpf_program *get_program(napi_env env, struct object *o, napi_value v)
{
	char name[128];
	struct bpf_program *prog;

	if (!get_string(env, v, name, sizeof(name)))
		return throw_type(env, "bad program name"), NULL;
	prog = bpf_object__find_program_by_name(o->obj, name);
	if (!prog)
		throw_errno(env, "bpf_object__find_program_by_name", ENOENT, 0);
	return prog;
}

static struct bpf_map *get_map(napi_env env, struct object *o, napi_value v)
{
	char name[128];
	struct bpf_map *map;

	if (!get_string(env, v, name, sizeof(name)))
		return throw_type(env, "bad map name"), NULL;
	map = bpf_object__find_map_by_name(o->obj, name);
	if (!map)
		throw_errno(env, "bpf_object__find_map_by_name", ENOENT, 0);
	return map;
}

/* open(path) -> handle */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	char path[4096];
	struct object *o;
	napi_value handle;
	int err;
	ARGS(1);

	if (!get_string(env, argv[0], path, sizeof(path)))
		return throw_type(env, "bad path");
	o = calloc(1, sizeof(*o));
	if (!o)
		return throw_errno(env, "calloc", ENOMEM, 0);
	log_reset();
	o->obj = bpf_object__open_file(path, NULL);
	err = libbpf_get_error(o->obj);
	if (err) {
		free(o);
		return throw_errno(env, "bpf_object__open_file", err, 1);
	}
	napi_create_external(env, o, object_finalize, NULL, &handle);
	return handle;
}

/* close(handle): detaches every link and frees the object */
static napi_value js_close(napi_env env, napi_callback_info info)
{
	struct object *o = NULL;
	ARGS(1);

	if (napi_get_value_external(env, argv[0], (void **)&o) == napi_ok && o)
		object_close(o);
	return NULL;
}

/*
 * setGlobal(handle, name, buffer): writes a global variable (.rodata, .data,
 * .bss) before load, found by name in the object's BTF data sections.
 */
static napi_value js_set_global(napi_env env, napi_callback_info info)
{
	char name[128];
	struct object *o;
	void *data;
	size_t size;
	const struct btf *btf;
	int id, n;
	ARGS(3);

	if (!(o = get_object(env, argv[0])))
		return NULL;
	if (!get_string(env, argv[1], name, sizeof(name)))
		return throw_type(env, "bad variable name");
	if (napi_get_buffer_info(env, argv[2], &data, &size) != napi_ok)
		return throw_type(env, "value must be a Buffer");
	btf = bpf_object__btf(o->obj);
	if (!btf)
		return throw_errno(env, "bpf_object__btf", ENOENT, 0);

	n = btf__type_cnt(btf);
	for (id = 1; id < n; id++) {
		const struct btf_type *sec = btf__type_by_id(btf, id);
		const struct btf_var_secinfo *vs;
		const char *sec_name;
		struct bpf_map *map;
		int i;

		if (!btf_is_datasec(sec))
			continue;
		sec_name = btf__name_by_offset(btf, sec->name_off);
		vs = btf_var_secinfos(sec);
		for (i = 0; i < btf_vlen(sec); i++, vs++) {
			const struct btf_type *var = btf__type_by_id(btf, vs->type);
			size_t map_size, name_len, sec_len;
			const void *init;
			void *copy;
			int err;

			if (strcmp(btf__name_by_offset(btf, var->name_off), name))
				continue;
			if (vs->size != size)
				return throw_errno(env, "setGlobal: size mismatch", EINVAL, 0);
			/* Internal maps are named "<object prefix><section>". */
			sec_len = strlen(sec_name);
			bpf_object__for_each_map(map, o->obj) {
				name_len = strlen(bpf_map__name(map));
				if (name_len >= sec_len &&
				    !strcmp(bpf_map__name(map) + name_len - sec_len, sec_name))
					break;
			}
			if (!map)
				return throw_errno(env, "setGlobal: no map for section", ENOENT, 0);
			init = bpf_map__initial_value(map, &map_size);
			if (!init || vs->offset + size > map_size)
				return throw_errno(env, "bpf_map__initial_value", EINVAL, 0);
			copy = malloc(map_size);
			if (!copy)
				return throw_errno(env, "malloc", ENOMEM, 0);
			memcpy(copy, init, map_size);
			memcpy((char *)copy + vs->offset, data, size);
			err = bpf_map__set_initial_value(map, copy, map_size);
			free(copy);
			if (err)
				return throw_errno(env, "bpf_map__set_initial_value", err, 0);
			return NULL;
		}
	}
	return throw_errno(env, "setGlobal: no such variable", ENOENT, 0);
}

/* setMaxEntries(handle, map, n) */
static napi_value js_set_max_entries(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_map *map;
	uint32_t n;
	int err;
	ARGS(3);

	if (!(o = get_object(env, argv[0])) || !(map = get_map(env, o, argv[1])))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &n) != napi_ok)
		return throw_type(env, "max entries must be a number");
	err = bpf_map__set_max_entries(map, n);
	return err ? throw_errno(env, "bpf_map__set_max_entries", err, 0) : NULL;
}

/* setAutoload(handle, program, bool) */
static napi_value js_set_autoload(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	bool on;
	int err;
	ARGS(3);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (napi_get_value_bool(env, argv[2], &on) != napi_ok)
		return throw_type(env, "autoload must be a boolean");
	err = bpf_program__set_autoload(prog, on);
	return err ? throw_errno(env, "bpf_program__set_autoload", err, 0) : NULL;
}

/*
 * setProgramType(handle, program, type, expectedAttachType): for program
 * types the system libbpf predates (BPF_PROG_TYPE_NETFILTER is 32 with
 * attach type 45; libbpf 1.1.2 has no section name for it).
 */
static napi_value js_set_program_type(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	uint32_t type, attach;
	int err;
	ARGS(4);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &type) != napi_ok ||
	    napi_get_value_uint32(env, argv[3], &attach) != napi_ok)
		return throw_type(env, "type and attach type must be numbers");
	err = bpf_program__set_type(prog, type);
	if (!err)
		err = bpf_program__set_expected_attach_type(prog, attach);
	return err ? throw_errno(env, "bpf_program__set_type", err, 0) : NULL;
}

/* programs(handle) -> names of all programs in the object */
static napi_value js_programs(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	napi_value list, name;
	uint32_t i = 0;
	ARGS(1);

	if (!(o = get_object(env, argv[0])))
		return NULL;
	napi_create_array(env, &list);
	bpf_object__for_each_program(prog, o->obj) {
		napi_create_string_utf8(env, bpf_program__name(prog), NAPI_AUTO_LENGTH, &name);
		napi_set_element(env, list, i++, name);
	}
	return list;
}

/* load(handle): throws with the verifier's log on failure */
static napi_value js_load(napi_env env, napi_callback_info info)
{
	struct object *o;
	int err;
	ARGS(1);

	if (!(o = get_object(env, argv[0])))
		return NULL;
	log_reset();
	err = bpf_object__load(o->obj);
	return err ? throw_errno(env, "bpf_object__load", err, 1) : NULL;
}

/* attach(handle, program): attaches by section name (tp_btf, tc, ...) as a link */
static napi_value js_attach(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	struct bpf_link *link;
	int err;
	ARGS(2);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (o->nr_links >= MAX_LINKS)
		return throw_errno(env, "bpf_program__attach", E2BIG, 0);
	log_reset();
	link = bpf_program__attach(prog);
	err = libbpf_get_error(link);
	if (err)
		return throw_errno(env, "bpf_program__attach", err, 1);
	o->links[o->nr_links++] = link;
	return NULL;
}

/*
 * attachNetfilter(handle, program, pf, hooknum, priority, flags): a BPF
 * netfilter link (kernel 6.4+) through the raw syscall, because libbpf
 * 1.1.2 has no API for it. The link is owned by its fd: gone when we are.
 */
static napi_value js_attach_netfilter(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	uint32_t pf, hooknum, flags;
	int32_t priority;
	int fd;
	/* union bpf_attr as of 6.4: link_create.netfilter follows attach_type/flags */
	struct {
		uint32_t prog_fd, target_fd, attach_type, flags;
		uint32_t pf, hooknum;
		int32_t priority;
		uint32_t nf_flags;
		uint64_t pad[8];
	} attr;
	ARGS(6);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &pf) != napi_ok ||
	    napi_get_value_uint32(env, argv[3], &hooknum) != napi_ok ||
	    napi_get_value_int32(env, argv[4], &priority) != napi_ok ||
	    napi_get_value_uint32(env, argv[5], &flags) != napi_ok)
		return throw_type(env, "pf, hooknum, priority and flags must be numbers");
	if (o->nr_link_fds >= MAX_LINKS)
		return throw_errno(env, "BPF_LINK_CREATE", E2BIG, 0);
	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = bpf_program__fd(prog);
	attr.attach_type = 45; /* BPF_NETFILTER */
	attr.pf = pf;
	attr.hooknum = hooknum;
	attr.priority = priority;
	attr.nf_flags = flags;
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return throw_errno(env, "BPF_LINK_CREATE", errno, 0);
	o->link_fds[o->nr_link_fds++] = fd;
	return NULL;
}

/* mapLookup(handle, map, key) -> Buffer or null; per-CPU maps give one value per CPU */
static napi_value js_map_lookup(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_map *map;
	void *key, *value;
	size_t key_size, value_size;
	napi_value result;
	int err, ncpus = 1;
	enum bpf_map_type type;
	ARGS(3);

	if (!(o = get_object(env, argv[0])) || !(map = get_map(env, o, argv[1])))
		return NULL;
	if (napi_get_buffer_info(env, argv[2], &key, &key_size) != napi_ok)
		return throw_type(env, "key must be a Buffer");
	type = bpf_map__type(map);
	if (type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	    type == BPF_MAP_TYPE_LRU_PERCPU_HASH) {
		ncpus = libbpf_num_possible_cpus();
		if (ncpus < 0)
			return throw_errno(env, "libbpf_num_possible_cpus", ncpus, 0);
		value_size = ((bpf_map__value_size(map) + 7) & ~7u) * ncpus;
	} else {
		value_size = bpf_map__value_size(map);
	}
	if (napi_create_buffer(env, value_size, &value, &result) != napi_ok)
		return throw_errno(env, "napi_create_buffer", ENOMEM, 0);
	err = bpf_map__lookup_elem(map, key, key_size, value, value_size, 0);
	if (err == -ENOENT) {
		napi_get_null(env, &result);
		return result;
	}
	return err ? throw_errno(env, "bpf_map__lookup_elem", err, 0) : result;
}

/* ---- ring buffer reader ---- */

struct ring {
	napi_env env;
	struct ring_buffer *rb;
	uv_poll_t poll;
	napi_ref callback;
	napi_async_context async;
	char *batch;
	size_t len, cap;
	int closed;
};

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct ring *r = ctx;
	/* 4-byte length + record, padded so the next length is 4-aligned */
	size_t need = (4 + size + 3) & ~(size_t)3;
	uint32_t len = size;
	if (r->len + need > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64 * 1024;
		char *grown;

		while (cap < r->len + need)
			cap *= 2;
		grown = realloc(r->batch, cap);
		if (!grown)
			return -ENOMEM;
		r->batch = grown;
		r->cap = cap;
	}
	memcpy(r->batch + r->len, &len, 4);
	memcpy(r->batch + r->len + 4, data, size);
	r->len += need;
	return 0;
}

/* Drains the ring and hands the batch to JavaScript; returns records read. */
static int ring_drain(struct ring *r, napi_value *out)
{
	int n;

	r->len = 0;
	n = ring_buffer__consume(r->rb);
	if (n < 0)
		return n;
	if (r->len == 0)
		return 0;
	if (napi_create_buffer_copy(r->env, r->len, r->batch, NULL, out) != napi_ok)
		return -ENOMEM;
	return n;
}

static void ring_on_readable(uv_poll_t *poll, int status, int events)
{
	struct ring *r = poll->data;
	napi_handle_scope scope;
	napi_value batch, callback, global, result;
	int n;

	if (r->closed)
		return;
	napi_open_handle_scope(r->env, &scope);
	n = ring_drain(r, &batch);
	if (n > 0 && napi_get_reference_value(r->env, r->callback, &callback) == napi_ok) {
		napi_get_global(r->env, &global);
		napi_make_callback(r->env, r->async, global, callback, 1, &batch, &result);
	}
	napi_close_handle_scope(r->env, scope);
}

static void ring_free(uv_handle_t *handle)
{
	struct ring *r = handle->data;

	free(r->batch);
	free(r);
}

static void ring_close(struct ring *r)
{
	if (r->closed)
		return;
	r->closed = 1;
	uv_poll_stop(&r->poll);
	ring_buffer__free(r->rb);
	r->rb = NULL;
	napi_delete_reference(r->env, r->callback);
	napi_async_destroy(r->env, r->async);
	uv_close((uv_handle_t *)&r->poll, ring_free);
}

static void ring_finalize(napi_env env, void *data, void *hint)
{
	/* Only reached once JavaScript dropped the handle; closing frees it. */
	ring_close(data);
}

/* openRing(handle, map, onBatch) -> ring; onBatch(Buffer) per wake-up */
static napi_value js_open_ring(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_map *map;
	struct ring *r;
	uv_loop_t *loop;
	napi_value handle, name;
	napi_valuetype type;
	int err;
	ARGS(3);

	if (!(o = get_object(env, argv[0])) || !(map = get_map(env, o, argv[1])))
		return NULL;
	if (napi_typeof(env, argv[2], &type) != napi_ok || type != napi_function)
		return throw_type(env, "onBatch must be a function");
	r = calloc(1, sizeof(*r));
	if (!r)
		return throw_errno(env, "calloc", ENOMEM, 0);
	r->env = env;
	r->rb = ring_buffer__new(bpf_map__fd(map), ring_sample, r, NULL);
	err = libbpf_get_error(r->rb);
	if (err) {
		free(r);
		return throw_errno(env, "ring_buffer__new", err, 0);
	}
	napi_get_uv_event_loop(env, &loop);
	uv_poll_init(loop, &r->poll, ring_buffer__epoll_fd(r->rb));
	r->poll.data = r;
	napi_create_reference(env, argv[2], 1, &r->callback);
	napi_create_string_utf8(env, "tracepkt:ring", NAPI_AUTO_LENGTH, &name);
	napi_async_init(env, NULL, name, &r->async);
	uv_poll_start(&r->poll, UV_READABLE, ring_on_readable);
	napi_create_external(env, r, ring_finalize, NULL, &handle);
	return handle;
}

static struct ring *get_ring(napi_env env, napi_value v)
{
	struct ring *r = NULL;

	if (napi_get_value_external(env, v, (void **)&r) != napi_ok || !r)
		return throw_type(env, "not a ring handle"), NULL;
	return r;
}

/* consumeRing(ring) -> Buffer or null: drains now, without waiting for a wake-up */
static napi_value js_consume_ring(napi_env env, napi_callback_info info)
{
	struct ring *r;
	napi_value batch = NULL;
	int n;
	ARGS(1);

	if (!(r = get_ring(env, argv[0])))
		return NULL;
	if (r->closed) {
		napi_get_null(env, &batch);
		return batch;
	}
	n = ring_drain(r, &batch);
	if (n < 0)
		return throw_errno(env, "ring_buffer__consume", n, 0);
	if (n == 0)
		napi_get_null(env, &batch);
	return batch;
}

/* closeRing(ring): stops watching; the event loop no longer waits on it */
static napi_value js_close_ring(napi_env env, napi_callback_info info)
{
	struct ring *r;
	ARGS(1);

	if ((r = get_ring(env, argv[0])))
		ring_close(r);
	return NULL;
}

/* takeLog() -> libbpf's messages since the last open/load/attach */
static napi_value js_take_log(napi_env env, napi_callback_info info)
{
	napi_value s;

	napi_create_string_utf8(env, log_buf, log_len, &s);
	return s;
}

static napi_value init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "open", js_open },
		{ "close", js_close },
		{ "setGlobal", js_set_global },
		{ "setMaxEntries", js_set_max_entries },
		{ "setAutoload", js_set_autoload },
		{ "setProgramType", js_set_program_type },
		{ "programs", js_programs },
		{ "load", js_load },
		{ "attach", js_attach },
		{ "attachNetfilter", js_attach_netfilter },
		{ "mapLookup", js_map_lookup },
		{ "openRing", js_open_ring },
		{ "consumeRing", js_consume_ring },
		{ "closeRing", js_close_ring },
		{ "takeLog", js_take_log },
	};
	size_t i;

	libbpf_set_print(collect_print);
	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value fn;

		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
		napi_set_named_property(env, exports, fns[i].name, fn);
	}
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
