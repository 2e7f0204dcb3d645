/*
 * process: run a command as a child process, read its output line by line in a fiber, and
 * report how it ended.
 *
 * The fiber spawns the command with its stdout as a pipe (a stream the fiber owns), reads
 * each line with ax_stream_read_until (which parks the fiber, never the core), and at the end
 * of the output waits for the child's exit with ax_process_wait and a deadline; a child that
 * outlives its output by more than 10 s is killed.  stderr is inherited: it goes where this
 * program's goes.  No SIGCHLD handler is involved: axon watches a pidfd of the child.
 *
 *   build/examples/process                       # runs: ls -l /
 *   build/examples/process sh -c 'echo hi; exit 3'
 *   build/examples/process no-such-program       # the spawn's error, not an exit 127
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <axon.h>

#define LINE_MAX_BYTES 4096
#define EXIT_WAIT_NS (10 * AX_NSEC_PER_SEC) /* after the end of its output */

typedef struct job {
  char **argv;  /* the command */
  int failed;   /* set by the fiber: this program's exit status */
} job_t;

static int report(job_t *job, const char *what, int err) {
  fprintf(stderr, "process: %s: %s\n", what, ax_strerror(err));
  job->failed = 1;
  return err;
}

static int run(ax_actor_t *self, void *arg) {
  job_t *job = arg;
  ax_process_opts_t opts = {.out = AX_STDIO_PIPE}; /* stdin /dev/null, stderr inherited */
  ax_process_t *p;
  int rc = ax_process_spawn(self, (const char *const *)job->argv, &opts, &p);
  if (rc < 0)
    return report(job, "ax_process_spawn", rc);
  printf("started %s, pid %d\n", job->argv[0], (int)ax_process_pid(p));

  ax_stream_t *out = ax_process_stream(p, STDOUT_FILENO);
  char line[LINE_MAX_BYTES];
  int lines = 0;
  for (;;) {
    ssize_t n = ax_stream_read_until(out, line, sizeof line - 1, '\n', AX_FOREVER);
    if (n == -EMSGSIZE) /* a longer line: its first part is in line, the rest comes next */
      n = (ssize_t)sizeof line - 1;
    if (n == 0) /* the end of its output */
      break;
    if (n < 0) {
      if (n != -ECANCELED) /* -ECANCELED: Ctrl-C stops the runtime, and us */
        report(job, "reading its output", (int)n);
      break; /* the child is not killed: closing its pipe is what it sees */
    }
    if (line[n - 1] == '\n')
      n--; /* the last line may come without one */
    line[n] = '\0';
    printf("line %d: %s\n", ++lines, line);
  }
  rc = ax_stream_close(out);
  if (rc < 0)
    report(job, "ax_stream_close", rc);

  ax_process_exit_t ex;
  rc = ax_process_wait(p, ax_deadline(EXIT_WAIT_NS), &ex);
  if (rc == -ETIMEDOUT) { /* its output ended long ago, yet it runs on */
    printf("still running after its output ended: SIGKILL\n");
    rc = ax_process_kill(p, SIGKILL);
    if (rc == 0 || rc == -ESRCH) /* -ESRCH: it ended meanwhile */
      rc = ax_process_wait(p, AX_FOREVER, &ex);
  }
  if (rc < 0 && rc != -ECANCELED)
    report(job, "ax_process_wait", rc);
  else if (rc == 0 && ex.signo != 0)
    printf("%d lines; killed by signal %d (%s)\n", lines, ex.signo, strsignal(ex.signo));
  else if (rc == 0)
    printf("%d lines; exit code %d\n", lines, ex.code);
  rc = ax_process_close(p); /* a child still running (Ctrl-C) is reaped in the background */
  if (rc < 0)
    report(job, "ax_process_close", rc);
  return 0;
}

int main(int argc, char **argv) {
  static char *fallback[] = {"ls", "-l", "/", NULL};
  job_t job = {.argv = argc > 1 ? argv + 1 : fallback};
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear at once, even into a pipe */

  ax_rt_opts_t ro = {.cores = 1}; /* one fiber: one core is plenty */
  ax_rt_t *rt;
  int rc = ax_rt_new(&ro, &rt);
  if (rc < 0) {
    fprintf(stderr, "process: ax_rt_new: %s\n", ax_strerror(rc));
    return 1;
  }
  rc = ax_spawn_fiber(rt, run, &job, NULL, NULL);
  if (rc == 0)
    rc = ax_rt_run(rt); /* until the fiber returns (or SIGINT/SIGTERM) */
  if (rc < 0) {
    fprintf(stderr, "process: %s\n", ax_strerror(rc));
    job.failed = 1;
  }
  rc = ax_rt_free(rt);
  if (rc < 0) {
    fprintf(stderr, "process: ax_rt_free: %s\n", ax_strerror(rc));
    job.failed = 1;
  }
  printf("bye\n");
  return job.failed;
}
