/* Error descriptions, the monotonic clock and the library version. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "axon/common.h"

int64_t ax_now(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * AX_NSEC_PER_SEC + ts.tv_nsec;
}

/* glibc's strerrordesc_np/strerrorname_np return static strings and, unlike
 * strerror, never format into a shared buffer, so both are thread-safe. */
const char *ax_strerror(int err) {
  if (err == 0)
    return "success";
  if (err < 0 && err > -4096) {
    const char *s = strerrordesc_np(-err);
    if (s != NULL)
      return s;
  }
  return "unknown error";
}

const char *ax_err_name(int err) {
  if (err == 0)
    return "OK";
  if (err < 0 && err > -4096) {
    const char *s = strerrorname_np(-err);
    if (s != NULL)
      return s;
  }
  return "UNKNOWN";
}

unsigned ax_version(void) { return AX_VERSION_HEX; }

const char *ax_version_string(void) { return AX_VERSION_STRING; }
