// SPDX-License-Identifier: MIT
/*
 * The BPF programs attached to an interface, found as `bpftool net` finds
 * them: XDP from the link (bpf_xdp_query), classic tc filters of the clsact
 * qdisc from an RTM_GETTFILTER dump, tcx (6.6+) from BPF_PROG_QUERY; and
 * what a program is, by its id. In the calling thread's namespace. Each is
 * one short exchange the kernel answers at once; nothing is changed.
 */
#include "addon.h"
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* enum bpf_attach_type (6.6+): the kernel headers these machines build with predate them */
#define TP_BPF_TCX_INGRESS 46
#define TP_BPF_TCX_EGRESS 47
#define MAX_QUERY 64

struct found {
	napi_env env;
	napi_value list;
	uint32_t n;
};

/* Appends { hook, direction, mode, id, priority, handle } to the list; false with an exception pending. */
static int add_program(struct found *f, const char *hook, const char *direction, const char *mode, uint32_t id,
		       uint32_t priority, uint32_t handle)
{
	napi_env env = f->env;
	napi_value o, v;

	if (napi_create_object(env, &o) != napi_ok)
		return 0;
#define SET(name, make) (make == napi_ok && napi_set_named_property(env, o, name, v) == napi_ok)
	if (!SET("hook", napi_create_string_utf8(env, hook, NAPI_AUTO_LENGTH, &v)) ||
	    !SET("direction", napi_create_string_utf8(env, direction, NAPI_AUTO_LENGTH, &v)) ||
	    !SET("mode", napi_create_string_utf8(env, mode, NAPI_AUTO_LENGTH, &v)) ||
	    !SET("id", napi_create_uint32(env, id, &v)) || !SET("priority", napi_create_uint32(env, priority, &v)) ||
	    !SET("handle", napi_create_uint32(env, handle, &v)))
		return 0;
#undef SET
	return napi_set_element(env, f->list, f->n++, o) == napi_ok;
}

static int xdp_programs(struct found *f, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q))
		return 1; /* no such device here, or no XDP support: nothing attached */
	if (q.drv_prog_id && !add_program(f, "xdp", "ingress", "driver", q.drv_prog_id, 0, 0))
		return 0;
	if (q.skb_prog_id && !add_program(f, "xdp", "ingress", "generic", q.skb_prog_id, 0, 0))
		return 0;
	if (q.hw_prog_id && !add_program(f, "xdp", "ingress", "offload", q.hw_prog_id, 0, 0))
		return 0;
	return 1;
}

/* The rtattr of `type` among those in [a, end), or NULL. */
static struct rtattr *find_attr(struct rtattr *a, int len, unsigned short type)
{
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if ((a->rta_type & NLA_TYPE_MASK) == type)
			return a;
	return NULL;
}

/* One filter of the dump: a bpf classifier's program id, priority and handle, its direct-action flag. */
static int tc_filter(struct found *f, struct nlmsghdr *nh, const char *direction)
{
	struct tcmsg *t = NLMSG_DATA(nh);
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*t));
	struct rtattr *attrs = (struct rtattr *)((char *)t + NLMSG_ALIGN(sizeof(*t)));
	struct rtattr *kind, *opts, *id, *flags;
	uint32_t bpf_flags = 0;

	if (len < 0 || !(kind = find_attr(attrs, len, TCA_KIND)) || strncmp(RTA_DATA(kind), "bpf", RTA_PAYLOAD(kind)))
		return 1;
	if (!(opts = find_attr(attrs, len, TCA_OPTIONS)) || !(id = find_attr(RTA_DATA(opts), RTA_PAYLOAD(opts), TCA_BPF_ID)) ||
	    RTA_PAYLOAD(id) < 4)
		return 1; /* the classifier's header line, or a filter without a program */
	flags = find_attr(RTA_DATA(opts), RTA_PAYLOAD(opts), TCA_BPF_FLAGS);
	if (flags && RTA_PAYLOAD(flags) >= 4)
		memcpy(&bpf_flags, RTA_DATA(flags), 4);
	return add_program(f, "tc", direction, bpf_flags & TCA_BPF_FLAG_ACT_DIRECT ? "direct-action" : "classifier",
			   *(uint32_t *)RTA_DATA(id), TC_H_MAJ(t->tcm_info) >> 16, t->tcm_handle);
}

/* The clsact qdisc's filters on one side: an RTM_GETTFILTER dump, read to its end. */
static int tc_programs(struct found *f, int ifindex, int ingress)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg t;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETTFILTER, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.t = { .tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex,
		       .tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS) },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct timeval limit = { .tv_sec = 2 };
	const char *direction = ingress ? "ingress" : "egress";
	size_t size = 64 * 1024;
	char *buf = malloc(size);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	int ok = 1, done = 0;

	if (!buf || fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) ||
	    sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		done = 1; /* nothing can be asked: nothing is listed */
	while (!done && ok) {
		struct sockaddr_nl from;
		socklen_t from_len = sizeof(from);
		ssize_t got = recvfrom(fd, buf, size, 0, (struct sockaddr *)&from, &from_len);
		struct nlmsghdr *nh;

		if (got <= 0)
			break; /* timed out or failed: what came is listed */
		if (from.nl_pid != 0)
			continue; /* only the kernel answers */
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, got); nh = NLMSG_NEXT(nh, got)) {
			if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) {
				done = 1; /* the end, or no clsact qdisc there (EINVAL) */
				break;
			}
			if (nh->nlmsg_type == RTM_NEWTFILTER && !(ok = tc_filter(f, nh, direction)))
				break;
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

static int tcx_programs(struct found *f, int ifindex, int attach_type, const char *direction)
{
	__u32 ids[MAX_QUERY];
	union bpf_attr attr;
	__u32 i;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = ifindex; /* target_ifindex: the same field */
	attr.query.attach_type = attach_type;
	attr.query.prog_ids = (__u64)(unsigned long)ids;
	attr.query.prog_cnt = MAX_QUERY;
	if (syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)))
		return 1; /* EINVAL before 6.6: no tcx */
	for (i = 0; i < attr.query.prog_cnt && i < MAX_QUERY; i++)
		if (!add_program(f, "tcx", direction, "tcx", ids[i], i, 0))
			return 0;
	return 1;
}

/* The programs of one interface, each tagged with its ifindex; false with an exception pending. */
static int programs_of(struct found *f, int ifindex)
{
	uint32_t first = f->n, i;
	napi_value o, v;

	if (!xdp_programs(f, ifindex) || !tc_programs(f, ifindex, 1) || !tc_programs(f, ifindex, 0) ||
	    !tcx_programs(f, ifindex, TP_BPF_TCX_INGRESS, "ingress") || !tcx_programs(f, ifindex, TP_BPF_TCX_EGRESS, "egress"))
		return 0;
	for (i = first; i < f->n; i++)
		if (napi_get_element(f->env, f->list, i, &o) != napi_ok || napi_create_int32(f->env, ifindex, &v) != napi_ok ||
		    napi_set_named_property(f->env, o, "ifindex", v) != napi_ok)
			return 0;
	return 1;
}

/*
 * interfacePrograms(ifindex) -> [{ hook, direction, mode, id, priority, handle, ifindex }], in the calling
 * thread's namespace; ifindex 0: those of every interface there.
 */
static napi_value js_interface_programs(napi_env env, napi_callback_info info)
{
	struct found f = { .env = env };
	struct if_nameindex *all, *i;
	int32_t ifindex;
	int ok = 1;
	ARGS(1);

	if (napi_get_value_int32(env, argv[0], &ifindex) != napi_ok || ifindex < 0)
		return throw_type(env, "ifindex must be a number, 0 for all interfaces");
	if (napi_create_array(env, &f.list) != napi_ok)
		return NULL;
	if (ifindex > 0)
		return programs_of(&f, ifindex) ? f.list : NULL;
	if (!(all = if_nameindex()))
		return throw_errno(env, "if_nameindex", errno, NULL);
	for (i = all; ok && i->if_index; i++)
		ok = programs_of(&f, i->if_index);
	if_freenameindex(all);
	return ok ? f.list : NULL;
}

/*
 * The name of a program's main function (its first func_info record) in its
 * BTF: what fexit on the program attaches to. Longer than the program's
 * name, which the kernel cuts at 15 characters. Empty without BTF.
 */
static void main_function(int fd, const struct bpf_prog_info *p, char *out, size_t size)
{
	struct bpf_prog_info q;
	struct bpf_func_info rec;
	__u32 len = sizeof(q);
	struct btf *btf;
	const struct btf_type *t;

	out[0] = 0;
	if (!p->btf_id || !p->nr_func_info)
		return;
	memset(&q, 0, sizeof(q));
	memset(&rec, 0, sizeof(rec));
	q.nr_func_info = 1;
	q.func_info_rec_size = sizeof(rec);
	q.func_info = (__u64)(unsigned long)&rec;
	if (bpf_obj_get_info_by_fd(fd, &q, &len))
		return;
	btf = btf__load_from_kernel_by_id(p->btf_id);
	if (libbpf_get_error(btf))
		return;
	t = btf__type_by_id(btf, rec.type_id);
	if (t && btf_is_func(t))
		snprintf(out, size, "%s", btf__name_by_offset(btf, t->name_off));
	btf__free(btf);
}

/* programInfo(id) -> { id, type, name, tag, btfId, funcInfo, funcName } or null when no program has the id (any more) */
static napi_value js_program_info(napi_env env, napi_callback_info info)
{
	struct bpf_prog_info p;
	__u32 len = sizeof(p);
	char tag[2 * BPF_TAG_SIZE + 1], func[128];
	uint32_t id;
	napi_value o, v;
	int fd, err, i;
	ARGS(1);

	if (napi_get_value_uint32(env, argv[0], &id) != napi_ok)
		return throw_type(env, "id must be a number");
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0) {
		if (errno == ENOENT)
			return napi_get_null(env, &v) == napi_ok ? v : NULL;
		return throw_errno(env, "bpf_prog_get_fd_by_id", errno, NULL);
	}
	memset(&p, 0, sizeof(p));
	err = bpf_obj_get_info_by_fd(fd, &p, &len) ? errno : 0;
	if (!err)
		main_function(fd, &p, func, sizeof(func));
	close(fd);
	if (err)
		return throw_errno(env, "bpf_obj_get_info_by_fd", err, NULL);
	for (i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", p.tag[i]);
	if (napi_create_object(env, &o) != napi_ok)
		return NULL;
#define SET(name, make) (make == napi_ok && napi_set_named_property(env, o, name, v) == napi_ok)
	if (!SET("id", napi_create_uint32(env, p.id, &v)) || !SET("type", napi_create_uint32(env, p.type, &v)) ||
	    !SET("name", napi_create_string_utf8(env, p.name, strnlen(p.name, sizeof(p.name)), &v)) ||
	    !SET("tag", napi_create_string_utf8(env, tag, NAPI_AUTO_LENGTH, &v)) ||
	    !SET("btfId", napi_create_uint32(env, p.btf_id, &v)) || !SET("funcInfo", napi_create_uint32(env, p.nr_func_info, &v)) ||
	    !SET("funcName", napi_create_string_utf8(env, func, NAPI_AUTO_LENGTH, &v)))
		return NULL;
#undef SET
	return o;
}

const struct addon_fn programs_fns[] = {
	{ "interfacePrograms", js_interface_programs },
	{ "programInfo", js_program_info },
	{ NULL, NULL },
};
