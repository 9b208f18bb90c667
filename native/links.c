// SPDX-License-Identifier: MIT
/*
 * Programs attached as links the object owns: by section name through
 * libbpf, and through the raw BPF_LINK_CREATE for the link kinds libbpf
 * 1.1.2 predates (netfilter, XDP and tcx on a device). A link is gone when
 * its object is closed, or when the process dies.
 */
#include "addon.h"
#include <net/if.h>
#include <sys/syscall.h>
#include <unistd.h>

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
		return throw_errno(env, "bpf_program__attach", E2BIG, NULL);
	log_reset();
	link = bpf_program__attach(prog);
	err = libbpf_get_error(link);
	if (err)
		return throw_errno(env, "bpf_program__attach", err, log_current());
	o->links[o->nr_links++] = link;
	return NULL;
}

/* BPF_LINK_CREATE with a prepared attr (libbpf 1.1.2 predates these link kinds); the fd is the object's */
static napi_value link_create(napi_env env, struct object *o, void *attr, size_t size)
{
	int fd;

	if (o->nr_link_fds >= MAX_OBJECT_LINKS)
		return throw_errno(env, "BPF_LINK_CREATE", E2BIG, NULL);
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, attr, size);
	if (fd < 0)
		return throw_errno(env, "BPF_LINK_CREATE", errno, NULL);
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
	return err ? throw_errno(env, "bpf_program__pin", err, log_current()) : NULL;
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
		return throw_errno(env, "if_nametoindex", errno, NULL);
	napi_create_uint32(env, index, &result);
	return result;
}

const struct addon_fn links_fns[] = {
	{ "attach", js_attach },
	{ "attachNetfilter", js_attach_netfilter },
	{ "attachLink", js_attach_link },
	{ "pinProgram", js_pin_program },
	{ "ifIndex", js_if_index },
	{ NULL, NULL },
};
