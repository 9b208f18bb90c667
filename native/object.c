// SPDX-License-Identifier: MIT
/*
 * The object handle: open a BPF object, configure it before load (globals,
 * map sizes, autoload, program types), load it here or on a worker thread,
 * read and write its maps, close it with every link it owns.
 */
#include "addon.h"

void object_close(struct object *o)
{
	int i;

	for (i = 0; i < o->nr_links; i++)
		bpf_link__destroy(o->links[i]);
	o->nr_links = 0;
	for (i = 0; i < o->nr_link_fds; i++)
		close(o->link_fds[i]);
	o->nr_link_fds = 0;
	for (i = 0; i < o->nr_target_fds; i++)
		close(o->target_fds[i]);
	o->nr_target_fds = 0;
	if (o->obj)
		bpf_object__close(o->obj);
	o->obj = NULL;
	free(o->image);
	o->image = NULL;
}

static void object_finalize(napi_env env, void *data, void *hint)
{
	struct object *o = data;

	/* A pending load holds a reference, so only the environment's teardown (the process
	 * exiting) finalizes a loading object: the worker may still use it, so it is left to
	 * the kernel, which frees its descriptors with the process. */
	if (o->loading) {
		o->close_after = 1;
		return;
	}
	object_close(o);
	free(o);
}

struct object *get_object(napi_env env, napi_value v)
{
	struct object *o = get_handle(env, v, &OBJECT_TAG, NULL, "not a BPF object handle");

	if (!o)
		return NULL;
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

struct bpf_program *get_program(napi_env env, struct object *o, napi_value v)
{
	char name[128];
	struct bpf_program *prog;

	if (!get_string(env, v, name, sizeof(name)))
		return throw_type(env, "bad program name"), NULL;
	prog = bpf_object__find_program_by_name(o->obj, name);
	if (!prog)
		throw_errno(env, "bpf_object__find_program_by_name", ENOENT, NULL);
	return prog;
}

struct bpf_map *get_map(napi_env env, struct object *o, napi_value v)
{
	char name[128];
	struct bpf_map *map;

	if (!get_string(env, v, name, sizeof(name)))
		return throw_type(env, "bad map name"), NULL;
	map = bpf_object__find_map_by_name(o->obj, name);
	if (!map)
		throw_errno(env, "bpf_object__find_map_by_name", ENOENT, NULL);
	return map;
}

/*
 * open(path[, image]) -> handle: the object file at path, or when image (a
 * Buffer) is given, those ELF bytes (the file as user space patched it; path
 * names it in messages).
 */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	char path[4096];
	struct object *o;
	napi_value handle;
	size_t argc = 2, size = 0;
	napi_value argv[2];
	void *bytes = NULL;
	bool is_buffer = false;
	int err;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1)
		return throw_type(env, "wrong number of arguments");
	if (!get_string(env, argv[0], path, sizeof(path)))
		return throw_type(env, "bad path");
	if (argc > 1 && (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
			 napi_get_buffer_info(env, argv[1], &bytes, &size) != napi_ok || !size))
		return throw_type(env, "bad object image");
	o = calloc(1, sizeof(*o));
	if (!o)
		return throw_errno(env, "calloc", ENOMEM, NULL);
	log_reset();
	if (bytes) {
		/* Named as libbpf names a file (its base name up to the first dot): the maps' kernel names
		 * (tracepkt.rodata...) are what tools and the tests know ours by. */
		char name[64];
		const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);

		snprintf(name, sizeof(name), "%.*s", (int)strcspn(base, "."), base);

		/* A copy of our own: the Buffer may move or go while libbpf still reads the ELF. */
		if (!(o->image = malloc(size))) {
			free(o);
			return throw_errno(env, "malloc", ENOMEM, NULL);
		}
		memcpy(o->image, bytes, size);
		o->obj = bpf_object__open_mem(o->image, size, &opts);
	} else {
		o->obj = bpf_object__open_file(path, NULL);
	}
	err = libbpf_get_error(o->obj);
	if (err) {
		free(o->image);
		free(o);
		return throw_errno(env, bytes ? "bpf_object__open_mem" : "bpf_object__open_file", err, log_current());
	}
	if (!(handle = make_handle(env, o, object_finalize, &OBJECT_TAG))) {
		object_close(o);
		free(o);
	}
	return handle;
}

/* close(handle): detaches every link and frees the object */
static napi_value js_close(napi_env env, napi_callback_info info)
{
	struct object *o;
	ARGS(1);

	if (!(o = get_handle(env, argv[0], &OBJECT_TAG, NULL, "not a BPF object handle")))
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
		return throw_errno(env, "bpf_object__btf", ENOENT, NULL);

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
				return throw_errno(env, "setGlobal: size mismatch", EINVAL, NULL);
			/* Internal maps are named "<object prefix><section>". */
			sec_len = strlen(sec_name);
			bpf_object__for_each_map(map, o->obj) {
				name_len = strlen(bpf_map__name(map));
				if (name_len >= sec_len &&
				    !strcmp(bpf_map__name(map) + name_len - sec_len, sec_name))
					break;
			}
			if (!map)
				return throw_errno(env, "setGlobal: no map for section", ENOENT, NULL);
			init = bpf_map__initial_value(map, &map_size);
			if (!init || vs->offset + size > map_size)
				return throw_errno(env, "bpf_map__initial_value", EINVAL, NULL);
			copy = malloc(map_size);
			if (!copy)
				return throw_errno(env, "malloc", ENOMEM, NULL);
			memcpy(copy, init, map_size);
			memcpy((char *)copy + vs->offset, data, size);
			err = bpf_map__set_initial_value(map, copy, map_size);
			free(copy);
			if (err)
				return throw_errno(env, "bpf_map__set_initial_value", err, NULL);
			return NULL;
		}
	}
	return throw_errno(env, "setGlobal: no such variable", ENOENT, NULL);
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
	return err ? throw_errno(env, "bpf_map__set_max_entries", err, NULL) : NULL;
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
	return err ? throw_errno(env, "bpf_program__set_autoload", err, NULL) : NULL;
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
	return err ? throw_errno(env, "bpf_program__set_type", err, NULL) : NULL;
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
	return err ? throw_errno(env, "bpf_object__load", err, log_current()) : NULL;
}

/*
 * loadAsync(handle) -> Promise: the same load on a libuv worker thread, so
 * that the kernel's verifier runs while JavaScript goes on (start-up).
 * libbpf's messages go to the worker thread's own log (errors.c), kept with the work.
 */
struct load_work {
	napi_async_work work;
	napi_deferred deferred;
	napi_ref handle; /* keeps the object alive while the worker uses it */
	struct object *o;
	int err;
	char *log; /* the worker thread's libbpf messages for this load */
};

static void load_execute(napi_env env, void *data)
{
	struct load_work *w = data;

	log_reset();
	w->err = bpf_object__load(w->o->obj);
	w->log = w->err ? log_take() : NULL;
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
	if (w->err) {
		napi_value error = errno_error(env, "bpf_object__load", w->err, w->log ? w->log : "");

		if (!error) /* out of memory while building it: reject with what is pending */
			napi_get_and_clear_last_exception(env, &error);
		napi_reject_deferred(env, w->deferred, error);
	} else {
		napi_get_undefined(env, &undefined);
		napi_resolve_deferred(env, w->deferred, undefined);
	}
	napi_delete_reference(env, w->handle);
	napi_delete_async_work(env, w->work);
	free(w->log);
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
		return throw_errno(env, "calloc", ENOMEM, NULL);
	w->o = o;
	/* The promise last: nothing is left unsettled when an earlier step fails. */
	if (napi_create_reference(env, argv[0], 1, &w->handle) != napi_ok ||
	    napi_create_string_utf8(env, "tracepkt:load", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_create_async_work(env, NULL, name, load_execute, load_complete, w, &w->work) != napi_ok ||
	    napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
		if (w->work)
			napi_delete_async_work(env, w->work);
		if (w->handle)
			napi_delete_reference(env, w->handle);
		free(w);
		return throw_errno(env, "loadAsync", ENOMEM, NULL);
	}
	o->loading = 1;
	if (napi_queue_async_work(env, w->work) != napi_ok) {
		napi_value error = errno_error(env, "napi_queue_async_work", EAGAIN, NULL);

		o->loading = 0;
		if (!error)
			napi_get_and_clear_last_exception(env, &error);
		napi_reject_deferred(env, w->deferred, error); /* settled: nobody waits forever */
		napi_delete_reference(env, w->handle);
		napi_delete_async_work(env, w->work);
		free(w);
	}
	return promise;
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
			return throw_errno(env, "libbpf_num_possible_cpus", ncpus, NULL);
		value_size = ((bpf_map__value_size(map) + 7) & ~7u) * ncpus;
	} else {
		value_size = bpf_map__value_size(map);
	}
	if (napi_create_buffer(env, value_size, &value, &result) != napi_ok)
		return throw_errno(env, "napi_create_buffer", ENOMEM, NULL);
	err = bpf_map__lookup_elem(map, key, key_size, value, value_size, 0);
	if (err == -ENOENT) {
		napi_get_null(env, &result);
		return result;
	}
	return err ? throw_errno(env, "bpf_map__lookup_elem", err, NULL) : result;
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
	return err ? throw_errno(env, "bpf_map__update_elem", err, NULL) : NULL;
}

/*
 * reuseMaps(handle, from): before load, every map of this object takes the
 * loaded map of the same name in `from` (a second instance of the same
 * object file: its globals, rings and tables are shared, not copied).
 */
static napi_value js_reuse_maps(napi_env env, napi_callback_info info)
{
	struct object *o, *from;
	struct bpf_map *map, *theirs;
	int err;
	ARGS(2);

	if (!(o = get_object(env, argv[0])) || !(from = get_object(env, argv[1])))
		return NULL;
	bpf_object__for_each_map(map, o->obj) {
		/* Every one shared, or the two instances would not see the same packets as the probe's. */
		theirs = bpf_object__find_map_by_name(from->obj, bpf_map__name(map));
		if (!theirs || bpf_map__fd(theirs) < 0)
			return throw_errno(env, "bpf_map__reuse_fd", ENOENT, bpf_map__name(map));
		err = bpf_map__reuse_fd(map, bpf_map__fd(theirs));
		if (err)
			return throw_errno(env, "bpf_map__reuse_fd", err, bpf_map__name(map));
	}
	return NULL;
}

/*
 * setAttachTarget(handle, program, targetId, function): before load, an
 * fexit/fentry program of this object is made to trace `function` of the
 * loaded BPF program with that id. The target's fd is held until the object
 * closes (the load needs it); the target itself is not changed.
 */
static napi_value js_set_attach_target(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	uint32_t id;
	char func[128];
	int fd, err;
	ARGS(4);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	if (napi_get_value_uint32(env, argv[2], &id) != napi_ok || !get_string(env, argv[3], func, sizeof(func)))
		return throw_type(env, "target id must be a number, function a string");
	if (o->nr_target_fds >= MAX_TARGET_FDS)
		return throw_errno(env, "bpf_program__set_attach_target", E2BIG, NULL);
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return throw_errno(env, "bpf_prog_get_fd_by_id", errno, NULL);
	o->target_fds[o->nr_target_fds++] = fd;
	log_reset();
	err = bpf_program__set_attach_target(prog, fd, func);
	return err ? throw_errno(env, "bpf_program__set_attach_target", err, log_current()) : NULL;
}

/* programId(handle, program) -> the kernel's id of a loaded program */
static napi_value js_program_id(napi_env env, napi_callback_info info)
{
	struct object *o;
	struct bpf_program *prog;
	struct bpf_prog_info p;
	__u32 len = sizeof(p);
	napi_value v;
	ARGS(2);

	if (!(o = get_object(env, argv[0])) || !(prog = get_program(env, o, argv[1])))
		return NULL;
	memset(&p, 0, sizeof(p));
	if (bpf_program__fd(prog) < 0 || bpf_obj_get_info_by_fd(bpf_program__fd(prog), &p, &len))
		return throw_errno(env, "bpf_obj_get_info_by_fd", bpf_program__fd(prog) < 0 ? EBADF : errno, NULL);
	return napi_create_uint32(env, p.id, &v) == napi_ok ? v : NULL;
}

const struct addon_fn object_fns[] = {
	{ "reuseMaps", js_reuse_maps },
	{ "setAttachTarget", js_set_attach_target },
	{ "programId", js_program_id },
	{ "open", js_open },
	{ "close", js_close },
	{ "setGlobal", js_set_global },
	{ "setMaxEntries", js_set_max_entries },
	{ "setAutoload", js_set_autoload },
	{ "setProgramType", js_set_program_type },
	{ "programs", js_programs },
	{ "load", js_load },
	{ "loadAsync", js_load_async },
	{ "mapLookup", js_map_lookup },
	{ "mapUpdate", js_map_update },
	{ NULL, NULL },
};
