/* A tiny program built against the installed axon package: one 1 ms timer on a fresh loop. */
#include <axon.h>
#include <stdio.h>

/* Counts the timer's calls through its data pointer. */
static void on_timer(ax_timer_t *timer) {
  ++*(int *)timer->data;
}

int main(void) {
  ax_loop_t *loop = NULL;
  int err = ax_loop_new(NULL, &loop);
  if (err < 0) {
    fprintf(stderr, "ax_loop_new: %s\n", ax_strerror(err));
    return 1;
  }
  ax_timer_t timer;
  int fired = 0;
  err = ax_timer_init(loop, &timer, on_timer);
  if (err == 0) {
    timer.data = &fired;
    err = ax_timer_start(&timer, AX_NSEC_PER_MSEC, 0);
  }
  if (err < 0) {
    fprintf(stderr, "timer: %s\n", ax_strerror(err));
    ax_loop_close(loop, AX_CLOSE_FORCE);
    return 1;
  }
  int result = ax_loop_run(loop, AX_FOREVER);
  if (result != AX_RUN_IDLE || fired != 1) {
    fprintf(stderr, "ax_loop_run returned %d with %d timer calls\n", result, fired);
    ax_loop_close(loop, AX_CLOSE_FORCE);
    return 1;
  }
  err = ax_loop_close(loop, 0);
  if (err < 0) {
    fprintf(stderr, "ax_loop_close: %s\n", ax_strerror(err));
    return 1;
  }
  printf("axon %s\n", ax_version_string());
  return 0;
}
