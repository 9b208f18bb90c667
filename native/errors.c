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

/* Written from a load's worker thread and from the main thread: under log_lock. */
static char log_buf[64 * 1024];
static size_t log_len;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Keeps the last sizeof(log_buf) - 1 bytes: the verifier says why it
 * refused a program at the end of its log, which can run to megabytes.
 */
int collect_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	va_list again;
	char *msg;
	size_t n, keep = sizeof(log_buf) - 1;
	int len;

	if (level == LIBBPF_DEBUG)
		return 0;
	va_copy(again, ap);
	len = vsnprintf(NULL, 0, fmt, again);
	va_end(again);
	if (len <= 0 || !(msg = malloc((size_t)len + 1)))
		return 0;
	vsnprintf(msg, (size_t)len + 1, fmt, ap);
	n = (size_t)len;
	pthread_mutex_lock(&log_lock);
	if (n >= keep) {
		memcpy(log_buf, msg + n - keep, keep);
		log_len = keep;
	} else {
		if (log_len + n > keep) {
			size_t drop = log_len + n - keep;

			memmove(log_buf, log_buf + drop, log_len - drop);
			log_len -= drop;
		}
		memcpy(log_buf + log_len, msg, n);
		log_len += n;
	}
	log_buf[log_len] = 0;
	pthread_mutex_unlock(&log_lock);
	free(msg);
	return 0;
}

void log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	log_buf[0] = 0;
	pthread_mutex_unlock(&log_lock);
}

/* An Error "op: strerror" with .op, .errno and, with_log, libbpf's messages as .log */
napi_value errno_error(napi_env env, const char *op, int err, int with_log)
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
		pthread_mutex_lock(&log_lock);
		napi_create_string_utf8(env, log_buf, log_len, &value);
		pthread_mutex_unlock(&log_lock);
		napi_set_named_property(env, error, "log", value);
	}
	return error;
}

napi_value throw_errno(napi_env env, const char *op, int err, int with_log)
{
	napi_throw(env, errno_error(env, op, err, with_log));
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
