/* Error descriptions, the monotonic clock and the library version. */
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <time.h>

#include "axon/common.h"

int64_t ax_now(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * AX_NSEC_PER_SEC + ts.tv_nsec;
}

/* Where axon returns a code for a condition of its own, the C library's
 * text would mislead ("No such process" for a stopped actor): these say
 * what axon means, and what the C library says after it where both apply. */
static const char *axon_meaning(int err) {
  switch (err) {
  case ESRCH: return "no such actor or port: it has stopped, or the reference names nothing";
  case ENOTTY: return "not a terminal: the fd is no serial port or tty";
  case ESHUTDOWN: return "the runtime is stopping: it takes no new actors";
  case EDEADLK: return "would wait for itself: called from one of the runtime's own threads";
  case ENOBUFS: return "the stream's write queue is full (high_water): wait for AX_MSG_WRITABLE";
  case ECANCELED: return "cancelled: its owner stopped or it was cancelled";
  case ETIMEDOUT: return "timed out: the deadline passed (or the peer stopped answering)";
  case EPERM: return "operation not permitted (by the kernel, or a fiber-only call made outside a fiber)";
  case ENOENT: return "no such file or directory (or no such timer, registered name or subscription)";
  case EEXIST: return "already exists: the file, or a name already registered";
  case EAGAIN: return "try again: a bounded queue or window is full for now";
  case EPIPE: return "broken pipe: the stream is closed for writing, or the peer closed it";
  default: return NULL;
  }
}

/* supervisor.h's AX_REASON_INTENSITY: the one code of axon's own outside
 * errno's range (supervisor.c checks that the two agree). */
#define REASON_INTENSITY (-1000)

/* glibc's strerrordesc_np/strerrorname_np return static strings and, unlike
 * strerror, never format into a shared buffer, so both are thread-safe. */
/* actor.h's positive stop reasons, which terminate hooks and DOWN
 * messages report beside negative codes (actor.c checks that they agree). */
#define REASON_STOPPED 1
#define REASON_SHUTDOWN 2

const char *ax_strerror(int err) {
  if (err == 0)
    return "OK: no error (as a stop reason: the behaviour returned AX_STOP)";
  if (err == REASON_STOPPED)
    return "stopped by ax_stop() with reason 0 (AX_REASON_STOPPED)";
  if (err == REASON_SHUTDOWN)
    return "stopped because the runtime stopped (AX_REASON_SHUTDOWN)";
  if (err == REASON_INTENSITY)
    return "a supervisor gave up: its children failed more often than its restart intensity allows";
  if (err < 0 && err > -4096) {
    const char *mine = axon_meaning(-err);
    if (mine != NULL)
      return mine;
  }
  if (AX_IS_EAI(err))
    return gai_strerror(err + AX_EAI_BASE); /* glibc: static strings */
  if (err < 0 && err > -4096) {
    const char *s = strerrordesc_np(-err);
    if (s != NULL)
      return s;
  }
  return "unknown error";
}

static const char *eai_name(int eai) {
  switch (eai) {
  case EAI_AGAIN: return "EAI_AGAIN";
  case EAI_BADFLAGS: return "EAI_BADFLAGS";
  case EAI_FAIL: return "EAI_FAIL";
  case EAI_FAMILY: return "EAI_FAMILY";
  case EAI_MEMORY: return "EAI_MEMORY";
  case EAI_NONAME: return "EAI_NONAME";
  case EAI_SERVICE: return "EAI_SERVICE";
  case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
  case EAI_SYSTEM: return "EAI_SYSTEM";
  case EAI_OVERFLOW: return "EAI_OVERFLOW";
#ifdef EAI_NODATA
  case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
  default: return "EAI_UNKNOWN";
  }
}

const char *ax_err_name(int err) {
  if (err == 0)
    return "OK";
  if (AX_IS_EAI(err))
    return eai_name(err + AX_EAI_BASE);
  if (err == REASON_INTENSITY)
    return "AX_REASON_INTENSITY";
  if (err == REASON_STOPPED)
    return "AX_REASON_STOPPED";
  if (err == REASON_SHUTDOWN)
    return "AX_REASON_SHUTDOWN";
  if (err == -ENOTSUP)
    return "ENOTSUP"; /* glibc names the same value EOPNOTSUPP; axon's headers say ENOTSUP */
  if (err < 0 && err > -4096) {
    const char *s = strerrorname_np(-err);
    if (s != NULL)
      return s;
  }
  return "UNKNOWN";
}

unsigned ax_version(void) { return AX_VERSION_HEX; }

const char *ax_version_string(void) { return AX_VERSION_STRING; }
