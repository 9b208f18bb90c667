// SPDX-License-Identifier: MIT
/*
 * libbpf's messages, kept rather than printed so that errors can carry them,
 * and the errors JavaScript receives: an Error "op: strerror" with .op,
 * .errno (positive) and, for loads and attaches, .log.
 */
#include "addon.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#define LOG_SIZE (64 * 1024)

/* This thread's messages: the last LOG_SIZE - 1 bytes (the verifier says why at the end). */
struct log {
	size_t len;
	char buf[LOG_SIZE];
};

/* One log per thread (loads run on libuv's workers), freed when the thread ends. */
static pthread_key_t log_key;
static pthread_once_t log_key_once = PTHREAD_ONCE_INIT;

static void make_log_key(void)
{
	pthread_key_create(&log_key, free);
}

static struct log *this_log(void)
{
	struct log *log;

	pthread_once(&log_key_once, make_log_key);
	log = pthread_getspecific(log_key);
	if (!log && (log = calloc(1, sizeof(*log))) && pthread_setspecific(log_key, log)) {
		free(log);
		log = NULL;
	}
	return log;
}

int collect_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	struct log *log = this_log();
	va_list again;
	char *msg;
	size_t n, keep = LOG_SIZE - 1;
	int len;

	if (level == LIBBPF_DEBUG || !log)
		return 0;
	/* The objects ship without line info (tools/drop-line-info.js): libbpf's warning about it is no news. */
	if (strstr(fmt, ".BTF.ext line info"))
		return 0;
	va_copy(again, ap);
	len = vsnprintf(NULL, 0, fmt, again);
	va_end(again);
	if (len <= 0 || !(msg = malloc((size_t)len + 1)))
		return 0;
	vsnprintf(msg, (size_t)len + 1, fmt, ap);
	n = (size_t)len;
	if (n >= keep) {
		memcpy(log->buf, msg + n - keep, keep);
		log->len = keep;
	} else {
		if (log->len + n > keep) {
			size_t drop = log->len + n - keep;

			memmove(log->buf, log->buf + drop, log->len - drop);
			log->len -= drop;
		}
		memcpy(log->buf + log->len, msg, n);
		log->len += n;
	}
	log->buf[log->len] = 0;
	free(msg);
	return 0;
}

void log_reset(void)
{
	struct log *log = this_log();

	if (log) {
		log->len = 0;
		log->buf[0] = 0;
	}
}

const char *log_current(void)
{
	struct log *log = this_log();

	return log ? log->buf : "";
}

char *log_take(void)
{
	return strdup(log_current());
}

napi_value errno_error(napi_env env, const char *op, int err, const char *log)
{
	char msg[256];
	napi_value error, message, value;

	if (err < 0)
		err = -err;
	if (err == 0)
		err = EINVAL;
	snprintf(msg, sizeof(msg), "%s: %s", op, strerror(err));
	if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
	    napi_create_error(env, NULL, message, &error) != napi_ok)
		return NULL; /* an exception is pending already (out of memory): it is what the caller gets */
	napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &value);
	napi_set_named_property(env, error, "op", value);
	napi_create_int32(env, err, &value);
	napi_set_named_property(env, error, "errno", value);
	if (log) {
		napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &value);
		napi_set_named_property(env, error, "log", value);
	}
	return error;
}

napi_value throw_errno(napi_env env, const char *op, int err, const char *log)
{
	napi_value error = errno_error(env, op, err, log);

	if (error)
		napi_throw(env, error);
	return NULL;
}

napi_value throw_type(napi_env env, const char *msg)
{
	napi_throw_type_error(env, NULL, msg);
	return NULL;
}

int get_string(napi_env env, napi_value v, char *buf, size_t size)
{
	size_t len;

	return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok && len < size - 1;
}

const napi_type_tag OBJECT_TAG = { 0x7472616365706b74ULL, 0x6f626a6563740001ULL };
const napi_type_tag RING_TAG = { 0x7472616365706b74ULL, 0x72696e6700000002ULL };
const napi_type_tag NETLINK_TAG = { 0x7472616365706b74ULL, 0x6e65746c696e6b03ULL };

napi_value make_handle(napi_env env, void *data, napi_finalize fin, const napi_type_tag *tag)
{
	napi_value handle;

	/* The finalizer comes last: until it is in place, a failure leaves data to the caller. */
	if (napi_create_external(env, data, NULL, NULL, &handle) != napi_ok ||
	    napi_type_tag_object(env, handle, tag) != napi_ok ||
	    napi_add_finalizer(env, handle, data, fin, NULL, NULL) != napi_ok)
		return throw_errno(env, "making a handle", ENOMEM, NULL);
	return handle;
}

void *get_handle(napi_env env, napi_value v, const napi_type_tag *tag, const napi_type_tag *tag2, const char *what)
{
	napi_valuetype type;
	bool ok = false;
	void *data = NULL;

	if (napi_typeof(env, v, &type) != napi_ok || type != napi_external ||
	    ((napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok) &&
	     (!tag2 || napi_check_object_type_tag(env, v, tag2, &ok) != napi_ok || !ok)) ||
	    napi_get_value_external(env, v, &data) != napi_ok || !data) {
		throw_type(env, what);
		return NULL;
	}
	return data;
}
