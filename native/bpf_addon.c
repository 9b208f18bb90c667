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
 * Reading: a uv_poll_t watches ring_buffer__epoll_fd() (or a netlink
 * socket); when it fires, everything pending is drained into one batch and
 * JavaScript gets a single Buffer per wake-up. No thread, no per-event call.
 * Batch format: [u32 length][record][padding to 4 bytes], repeated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define MAX_OBJECT_LINKS 1024

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

/* An Error "op: strerror" with .op, .errno and, with_log, libbpf's messages as .log */
static napi_value errno_error(napi_env env, const char *op, int err, int with_log)
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
	return error;
}

static napi_value throw_errno(napi_env env, const char *op, int err, int with_log)
{
	napi_throw(env, errno_error(env, op, err, with_log));
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
	struct bpf_link *links[MAX_OBJECT_LINKS];
	int nr_links;
	int link_fds[MAX_OBJECT_LINKS]; /* raw links created by syscall (netfilter) */
	int nr_link_fds;
	int loading;     /* a loadAsync is running on a worker thread: hands off */
	int close_after; /* close() came while loading */
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
	if (o->loading) {
		throw_type(env, "BPF object is being loaded");
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

	if (napi_get_value_external(env, argv[0], (void **)&o) != napi_ok || !o)
		return NULL;
	if (o->loading)
		o->close_after = 1; /* the worker owns it now; closed when the load ends */
	else
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

/*
 * loadAsync(handle) -> Promise: the same load on a libuv worker thread, so
 * that the kernel's verifier runs while JavaScript goes on (start-up).
 * libbpf's messages go to the one log buffer: one load at a time.
 */
struct load_work {
	napi_async_work work;
	napi_deferred deferred;
	napi_ref handle; /* keeps the object alive while the worker uses it */
	struct object *o;
	int err;
};

static void load_execute(napi_env env, void *data)
{
	struct load_work *w = data;

	w->err = bpf_object__load(w->o->obj);
}

static void load_complete(napi_env env, napi_status status, void *data)
{
	struct load_work *w = data;
	napi_value undefined;

	w->o->loading = 0;
	if (w->o->close_after) {
		object_close(w->o);
		w->err = w->err ? w->err : -ECANCELED;
	}
	if (status != napi_ok && !w->err)
		w->err = -ECANCELED;
	napi_get_undefined(env, &undefined);
	if (w->err)
		napi_reject_deferred(env, w->deferred, errno_error(env, "bpf_object__load", w->err, 1));
	else
		napi_resolve_deferred(env, w->deferred, undefined);
	napi_delete_reference(env, w->handle);
	napi_delete_async_work(env, w->work);
	free(w);
}

static napi_value js_load_async(napi_env env, napi_callback_info info)
{
	struct load_work *w;
	napi_value promise, name;
	struct object *o;
	ARGS(1);

	if (!(o = get_object(env, argv[0])))
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return throw_errno(env, "calloc", ENOMEM, 0);
	w->o = o;
	napi_create_promise(env, &w->deferred, &promise);
	napi_create_reference(env, argv[0], 1, &w->handle);
	napi_create_string_utf8(env, "tracepkt:load", NAPI_AUTO_LENGTH, &name);
	napi_create_async_work(env, NULL, name, load_execute, load_complete, w, &w->work);
	log_reset();
	o->loading = 1;
	if (napi_queue_async_work(env, w->work) != napi_ok) {
		o->loading = 0;
		napi_delete_reference(env, w->handle);
		napi_delete_async_work(env, w->work);
		free(w);
		return throw_errno(env, "napi_queue_async_work", EAGAIN, 0);
	}
	return promise;
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
	if (o->nr_links >= MAX_OBJECT_LINKS)
		return throw_errno(env, "bpf_program__attach", E2BIG, 0);
	log_reset();
	link = bpf_program__attach(prog);
	err = libbpf_get_error(link);
	if (err)
		return throw_errno(env, "bpf_program__attach", err, 1);
	o->links[o->nr_links++] = link;
	return NULL;
}

/* BPF_LINK_CREATE with a prepared attr (libbpf 1.1.2 predates these link kinds); the fd is the object's */
static napi_value link_create(napi_env env, struct object *o, void *attr, size_t size)
{
	int fd;

	if (o->nr_link_fds >= MAX_OBJECT_LINKS)
		return throw_errno(env, "BPF_LINK_CREATE", E2BIG, 0);
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, attr, size);
	if (fd < 0)
		return throw_errno(env, "BPF_LINK_CREATE", errno, 0);
	o->link_fds[o->nr_link_fds++] = fd;
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
	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = bpf_program__fd(prog);
	attr.attach_type = 45; /* BPF_NETFILTER */
	attr.pf = pf;
	attr.hooknum = hooknum;
	attr.priority = priority;
	attr.nf_flags = flags;
	return link_create(env, o, &attr, sizeof(attr));
}

/*
 * attachLink(handle, program, ifindex, attachType, flags): a link to a
 * network device (XDP, tcx) through the raw syscall: libbpf 1.1.2 knows no
 * tcx. TypeScript gives the attach type's number. Owned by its fd.
 */
static napi_value js_attach_link(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	uint32_t ifindex, attach_type, flags;
	/* union bpf_attr's link_create: target_ifindex shares target_fd's place */
	struct {
		uint32_t prog_fd, target_ifindex, attach_type, flags;
		uint64_t pad[8];
	} attr;
	ARGS(5);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &ifindex) != napi_ok ||
	    napi_get_value_uint32(env, argv[3], &attach_type) != napi_ok ||
	    napi_get_value_uint32(env, argv[4], &flags) != napi_ok)
		return throw_type(env, "ifindex, attachType and flags must be numbers");
	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = bpf_program__fd(prog);
	attr.target_ifindex = ifindex;
	attr.attach_type = attach_type;
	attr.flags = flags;
	return link_create(env, o, &attr, sizeof(attr));
}

/* pinProgram(handle, program, path): pins it in a bpffs (for tools that take a path: tc) */
static napi_value js_pin_program(napi_env env, napi_callback_info info)
{
	char path[4096];
	struct object *o;
	struct bpf_program *prog;
	int err;
	ARGS(3);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (!get_string(env, argv[2], path, sizeof(path)))
		return throw_type(env, "bad path");
	log_reset();
	err = bpf_program__pin(prog, path);
	return err ? throw_errno(env, "bpf_program__pin", err, 1) : NULL;
}

/* ifIndex(name) -> number: the interface's index in the calling thread's network namespace */
static napi_value js_if_index(napi_env env, napi_callback_info info)
{
	char name[IF_NAMESIZE + 1];
	unsigned int index;
	napi_value result;
	ARGS(1);

	if (!get_string(env, argv[0], name, sizeof(name)))
		return throw_type(env, "bad interface name");
	index = if_nametoindex(name);
	if (!index)
		return throw_errno(env, "if_nametoindex", errno, 0);
	napi_create_uint32(env, index, &result);
	return result;
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

/* mapUpdate(handle, map, key, value): one element, created or replaced */
static napi_value js_map_update(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_map *map;
	void *key, *value;
	size_t key_size, value_size;
	int err;
	ARGS(4);

	if (!(o = get_object(env, argv[0])) || !(map = get_map(env, o, argv[1])))
		return NULL;
	if (napi_get_buffer_info(env, argv[2], &key, &key_size) != napi_ok ||
	    napi_get_buffer_info(env, argv[3], &value, &value_size) != napi_ok)
		return throw_type(env, "key and value must be Buffers");
	err = bpf_map__update_elem(map, key, key_size, value, value_size, BPF_ANY);
	return err ? throw_errno(env, "bpf_map__update_elem", err, 0) : NULL;
}

/* ---- batches: what JavaScript receives, one Buffer per wake-up ---- */

struct batch {
	char *data;
	size_t len, cap;
	size_t limit; /* stop adding records past this many bytes; 0: no limit */
};

/*
 * Records handed to JavaScript per wake-up at most: it holds a batch's
 * events at once, so under a flood this bounds its memory; what remains in
 * the ring comes on the next turn of the event loop (the ring's fd stays
 * readable).
 */
#define BATCH_MAX (256 * 1024)

/* Appends [u32 length][record], padded so the next length is 4-aligned. */
static int batch_add(struct batch *b, const void *data, size_t size)
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
	return 0;
}

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

/* Drains the source; returns records read and the batch as a Buffer. */
/* Drains into a Buffer of at most `limit` bytes of records (0: everything). */
static int watch_drain(struct watch *w, napi_value *out, size_t limit)
{
	int n;

	w->batch.len = 0;
	w->batch.limit = limit;
	n = w->drain(w);
	if (n < 0)
		return n;
	if (w->batch.len == 0)
		return 0;
	if (napi_create_buffer_copy(w->env, w->batch.len, w->batch.data, NULL, out) != napi_ok)
		return -ENOMEM;
	return n;
}

static void watch_on_readable(uv_poll_t *poll, int status, int events)
{
	struct watch *w = poll->data;
	napi_handle_scope scope;
	napi_value batch, callback, global, result;
	int n;

	if (w->closed)
		return;
	napi_open_handle_scope(w->env, &scope);
	n = watch_drain(w, &batch, BATCH_MAX);
	if (n > 0 && napi_get_reference_value(w->env, w->callback, &callback) == napi_ok) {
		napi_get_global(w->env, &global);
		napi_make_callback(w->env, w->async, global, callback, 1, &batch, &result);
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
static napi_value watch_start(napi_env env, struct watch *w, int fd, napi_value callback, const char *name)
{
	uv_loop_t *loop;
	napi_value handle, resource;

	w->env = env;
	napi_get_uv_event_loop(env, &loop);
	uv_poll_init(loop, &w->poll, fd);
	w->poll.data = w;
	napi_create_reference(env, callback, 1, &w->callback);
	napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
	napi_async_init(env, NULL, resource, &w->async);
	uv_poll_start(&w->poll, UV_READABLE, watch_on_readable);
	napi_create_external(env, w, watch_finalize, NULL, &handle);
	return handle;
}

static struct watch *get_watch(napi_env env, napi_value v)
{
	struct watch *w = NULL;

	if (napi_get_value_external(env, v, (void **)&w) != napi_ok || !w)
		return throw_type(env, "not a watch handle"), NULL;
	return w;
}

/* ---- ring buffer reader ---- */

struct ring {
	struct watch w; /* first: a ring is a watch */
	struct ring_buffer *rb;
};

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct batch *b = &((struct ring *)ctx)->w.batch;
	int err = batch_add(b, data, size);

	if (err)
		return err;
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
		return throw_errno(env, "calloc", ENOMEM, 0);
	r->rb = ring_buffer__new(bpf_map__fd(map), ring_sample, r, NULL);
	err = libbpf_get_error(r->rb);
	if (err) {
		free(r);
		return throw_errno(env, "ring_buffer__new", err, 0);
	}
	r->w.drain = ring_drain;
	r->w.release = ring_release;
	return watch_start(env, &r->w, ring_buffer__epoll_fd(r->rb), argv[2], "tracepkt:ring");
}

/* drain(watch) -> Buffer or null: reads now, without waiting for a wake-up */
static napi_value js_drain(napi_env env, napi_callback_info info)
{
	struct watch *w;
	napi_value batch = NULL;
	int n;
	ARGS(1);

	if (!(w = get_watch(env, argv[0])))
		return NULL;
	if (w->closed) {
		napi_get_null(env, &batch);
		return batch;
	}
	n = watch_drain(w, &batch, 0); /* an explicit drain (close) takes everything */
	if (n < 0)
		return throw_errno(env, "drain", n, 0);
	if (n == 0)
		napi_get_null(env, &batch);
	return batch;
}

/* closeWatch(watch): stops watching and frees the source (ring, socket) */
static napi_value js_close_watch(napi_env env, napi_callback_info info)
{
	struct watch *w;
	ARGS(1);

	if ((w = get_watch(env, argv[0])))
		watch_close(w);
	return NULL;
}

/* ---- network namespaces ---- */

/*
 * BPF netfilter links and netlink sockets belong to the network namespace of
 * the thread that creates them, so JavaScript enters a namespace, creates
 * them, and leaves. Only the calling (main) thread moves.
 */
static int home_netns = -1;

/* enterNetns(path): moves the calling thread into the namespace at path */
static napi_value js_enter_netns(napi_env env, napi_callback_info info)
{
	char path[4096];
	int fd, err;
	ARGS(1);

	if (!get_string(env, argv[0], path, sizeof(path)))
		return throw_type(env, "bad namespace path");
	if (home_netns < 0) {
		home_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (home_netns < 0)
			return throw_errno(env, "open /proc/thread-self/ns/net", errno, 0);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, "open namespace", errno, 0);
	err = setns(fd, CLONE_NEWNET) ? errno : 0;
	close(fd);
	return err ? throw_errno(env, "setns", err, 0) : NULL;
}

/* leaveNetns(): back to the namespace the thread was in before enterNetns */
static napi_value js_leave_netns(napi_env env, napi_callback_info info)
{
	if (home_netns >= 0 && setns(home_netns, CLONE_NEWNET))
		return throw_errno(env, "setns back", errno, 0);
	return NULL;
}

/* ---- netlink sockets ---- */

struct nl {
	struct watch w; /* first: a socket is a watch */
	int fd;
	char buf[256 * 1024];
};

static int nl_drain(struct watch *w)
{
	struct nl *s = (struct nl *)w;
	int n = 0;

	for (;;) {
		ssize_t got = recv(s->fd, s->buf, sizeof(s->buf), MSG_DONTWAIT);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* The kernel dropped messages: tell JavaScript with an empty record. */
				if (batch_add(&w->batch, s->buf, 0))
					return -ENOMEM;
				n++;
				continue;
			}
			break; /* EAGAIN: drained */
		}
		if (batch_add(&w->batch, s->buf, got))
			return -ENOMEM;
		n++;
	}
	return n;
}

static void nl_release(struct watch *w)
{
	struct nl *s = (struct nl *)w;

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/*
 * netlinkOpen(protocol, groups[], onBatch) -> socket, in the calling
 * thread's namespace. Each datagram is one record of the batch (a zero-length
 * record means the kernel dropped messages: ENOBUFS).
 */
static napi_value js_netlink_open(napi_env env, napi_callback_info info)
{
	uint32_t protocol, n_groups, i;
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK };
	struct nl *s;
	int rcvbuf = 8 << 20;
	ARGS(3);

	if (napi_get_value_uint32(env, argv[0], &protocol) != napi_ok ||
	    napi_get_array_length(env, argv[1], &n_groups) != napi_ok)
		return throw_type(env, "protocol must be a number, groups an array");
	s = calloc(1, sizeof(*s));
	if (!s)
		return throw_errno(env, "calloc", ENOMEM, 0);
	s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int err = errno;

		nl_release(&s->w);
		free(s);
		return throw_errno(env, "netlink socket", err, 0);
	}
	/* Trace bursts must not overflow the socket: ask for a large buffer. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	for (i = 0; i < n_groups; i++) {
		napi_value v;
		uint32_t group;

		napi_get_element(env, argv[1], i, &v);
		if (napi_get_value_uint32(env, v, &group) != napi_ok ||
		    setsockopt(s->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group))) {
			int err = errno ? errno : EINVAL;

			nl_release(&s->w);
			free(s);
			return throw_errno(env, "NETLINK_ADD_MEMBERSHIP", err, 0);
		}
	}
	s->w.drain = nl_drain;
	s->w.release = nl_release;
	return watch_start(env, &s->w, s->fd, argv[2], "tracepkt:netlink");
}

/* netlinkSend(socket, buffer): one datagram to the kernel */
static napi_value js_netlink_send(napi_env env, napi_callback_info info)
{
	struct nl *s;
	void *data;
	size_t size;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ARGS(2);

	if (!(s = (struct nl *)get_watch(env, argv[0])))
		return NULL;
	if (s->w.closed)
		return throw_errno(env, "netlink send", EBADF, 0);
	if (napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok)
		return throw_type(env, "message must be a Buffer");
	if (sendto(s->fd, data, size, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return throw_errno(env, "netlink send", errno, 0);
	return NULL;
}

/*
 * netlinkReceive(socket, timeoutMs) -> Buffer or null: waits for one datagram.
 * For request/acknowledge exchanges while setting up, before watching.
 */
static napi_value js_netlink_receive(napi_env env, napi_callback_info info)
{
	struct nl *s;
	uint32_t timeout;
	struct pollfd pfd;
	napi_value result;
	ssize_t got;
	int ready;
	ARGS(2);

	if (!(s = (struct nl *)get_watch(env, argv[0])))
		return NULL;
	if (napi_get_value_uint32(env, argv[1], &timeout) != napi_ok)
		return throw_type(env, "timeout must be a number");
	pfd.fd = s->fd;
	pfd.events = POLLIN;
	do
		ready = poll(&pfd, 1, timeout);
	while (ready < 0 && errno == EINTR);
	if (ready < 0)
		return throw_errno(env, "poll", errno, 0);
	if (ready == 0) {
		napi_get_null(env, &result);
		return result;
	}
	got = recv(s->fd, s->buf, sizeof(s->buf), 0);
	if (got < 0)
		return throw_errno(env, "netlink receive", errno, 0);
	napi_create_buffer_copy(env, got, s->buf, NULL, &result);
	return result;
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
		{ "loadAsync", js_load_async },
		{ "attach", js_attach },
		{ "attachNetfilter", js_attach_netfilter },
		{ "attachLink", js_attach_link },
		{ "ifIndex", js_if_index },
		{ "pinProgram", js_pin_program },
		{ "mapLookup", js_map_lookup },
		{ "mapUpdate", js_map_update },
		{ "openRing", js_open_ring },
		{ "drain", js_drain },
		{ "closeWatch", js_close_watch },
		{ "enterNetns", js_enter_netns },
		{ "leaveNetns", js_leave_netns },
		{ "netlinkOpen", js_netlink_open },
		{ "netlinkSend", js_netlink_send },
		{ "netlinkReceive", js_netlink_receive },
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
