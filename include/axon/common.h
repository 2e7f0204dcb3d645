/* axon basics shared by every area: export macro, errors, time, container_of. */
#ifndef AXON_COMMON_H
#define AXON_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "axon/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a function as part of the exported ABI; everything else is hidden. */
#if defined(__GNUC__)
#define AX_API __attribute__((visibility("default")))
#else
#define AX_API
#endif

/* Given a pointer to MEMBER inside a TYPE, returns the TYPE that embeds it.
 * This is how a callback gets from an embedded watcher back to its owner. */
#define AX_CONTAINER_OF(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Time is int64_t nanoseconds on CLOCK_MONOTONIC.  AX_FOREVER as a timeout
 * or deadline means "no limit". */
#define AX_FOREVER ((int64_t)-1)

#define AX_NSEC_PER_USEC ((int64_t)1000)
#define AX_NSEC_PER_MSEC ((int64_t)1000000)
#define AX_NSEC_PER_SEC ((int64_t)1000000000)

/* Returns the current CLOCK_MONOTONIC time in nanoseconds.
 * Any thread; async-signal-safe (clock_gettime is). */
AX_API int64_t ax_now(void);

/* Errors.  Every axon function returns >= 0 on success and a negated errno
 * value on failure (-EINVAL, -ENOMEM, ...).  axon never reports errors through
 * the thread-local errno.
 *
 * ax_strerror() returns a static, human-readable description of such a code:
 * a negated errno value, 0 ("OK: no error"), the positive stop reasons of
 * actor.h (AX_REASON_STOPPED, AX_REASON_SHUTDOWN), or any other value
 * ("unknown error").  Where axon returns a code for a condition of its own, the text
 * says so: -ESRCH is "no such actor or port: ...", not the C library's "No
 * such process"; -ENOTTY names serial ports and ttys; -ENOBUFS a full write
 * queue; and so on (io/error.c lists them).  AX_REASON_INTENSITY
 * (supervisor.h) reads as a supervisor giving up.  Other codes read as
 * strerror's.  Any thread; the returned string is never freed. */
AX_API const char *ax_strerror(int err);

/* Name-resolution errors (getaddrinfo's EAI_* codes) are reported as
 * AX_EAI(EAI_NONAME) and so on: values below -AX_EAI_BASE, apart from every
 * errno value.  ax_strerror() and ax_err_name() explain them too. */
#define AX_EAI_BASE 5000
#define AX_EAI(eai) (-AX_EAI_BASE + (eai))
#define AX_IS_EAI(err) ((err) < -AX_EAI_BASE && (err) > -AX_EAI_BASE - 200)

/* ax_err_name() returns the symbolic name of a code ("EINVAL", "ESRCH",
 * "AX_REASON_INTENSITY", "AX_REASON_SHUTDOWN"; "ENOTSUP" for the value
 * glibc also calls EOPNOTSUPP), or "UNKNOWN".  Any thread. */
AX_API const char *ax_err_name(int err);

/* The version of the library actually loaded (compare with AX_VERSION_HEX,
 * the version compiled against).  Any thread. */
AX_API unsigned ax_version(void);
AX_API const char *ax_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* AXON_COMMON_H */
