/* Signal watchers: one signalfd per loop, fanned out to every watcher of a signal. */
#include <errno.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "io/internal.h"

/* Signals delivered per read of the signalfd; the rest wait for the next
 * pass (the fd is level-triggered), so one signal storm cannot starve fds. */
#define AX__SIG_BATCH 16

/* Delivers one signal to its watchers.  The list may change under the
 * callbacks: ax_signal_stop() advances loop->sig_next past a watcher it
 * unlinks, and watchers started during the delivery (seq_ newer than the
 * delivery's) are skipped until the next signal. */
static void deliver(ax_loop_t *loop, const struct signalfd_siginfo *info) {
  int signo = (int)info->ssi_signo;
  if (signo <= 0 || signo >= AX__NSIG)
    return;
  uint64_t seq = loop->sig_seq;
  for (ax_signal_t *w = loop->sig_head[signo]; w != NULL; w = loop->sig_next) {
    loop->sig_next = w->next_;
    if (w->seq_ <= seq)
      w->cb_(w, info);
  }
  loop->sig_next = NULL;
}

static void sigfd_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax_loop_t *loop = io->loop;
  struct signalfd_siginfo info[AX__SIG_BATCH];
  ssize_t n = read(io->fd, info, sizeof info);
  if (n <= 0)
    return;
  size_t count = (size_t)n / sizeof info[0];
  for (size_t i = 0; i < count; i++)
    deliver(loop, &info[i]);
}

/* Creates the loop's signalfd on first use. */
static int sigfd_open(ax_loop_t *loop) {
  if (loop->sig_fd >= 0)
    return 0;
  sigset_t none;
  sigemptyset(&none);
  int fd = signalfd(-1, &none, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0)
    return -errno;
  ax_io_init(loop, &loop->sig_io, fd, sigfd_cb);
  loop->sig_io.flags_ = AX__INTERNAL;
  int rc = ax__io_start_internal(&loop->sig_io, AX_READ);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  loop->sig_fd = fd;
  return 0;
}

int ax_signal_init(ax_loop_t *loop, ax_signal_t *sig, ax_signal_cb cb) {
  if (loop == NULL || sig == NULL || cb == NULL)
    return -EINVAL;
  sig->loop = loop;
  sig->signo = 0;
  sig->cb_ = cb;
  sig->next_ = sig->prev_ = NULL;
  sig->seq_ = 0;
  sig->flags_ = 0;
  return 0;
}

int ax_signal_start(ax_signal_t *sig, int signo) {
  if (sig == NULL || sig->loop == NULL || (sig->flags_ & AX__ACTIVE) || signo <= 0 ||
      signo >= AX__NSIG || signo > SIGRTMAX || signo == SIGKILL || signo == SIGSTOP)
    return -EINVAL;
  ax_loop_t *loop = sig->loop;
  AX__ASSERT_LOOP_THREAD(loop);
  int rc = sigfd_open(loop);
  if (rc < 0)
    return rc;

  if (loop->sig_head[signo] == NULL) {
    /* The first watcher of this signal: block it in this thread, so that it
     * stays pending for the signalfd instead of running its disposition,
     * and remember whether it was blocked before. */
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, signo);
    rc = pthread_sigmask(SIG_BLOCK, &one, &old);
    if (rc != 0)
      return -rc;
    if (!sigismember(&old, signo))
      sigaddset(&loop->sig_we_blocked, signo);
    sigaddset(&loop->sig_mask, signo);
    if (signalfd(loop->sig_fd, &loop->sig_mask, 0) < 0) {
      rc = -errno;
      sigdelset(&loop->sig_mask, signo);
      if (sigismember(&loop->sig_we_blocked, signo)) {
        sigdelset(&loop->sig_we_blocked, signo);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
      }
      return rc;
    }
  }
  sig->signo = signo;
  sig->seq_ = ++loop->sig_seq;
  sig->next_ = NULL;
  sig->prev_ = loop->sig_tail[signo];
  if (sig->prev_ != NULL)
    sig->prev_->next_ = sig;
  else
    loop->sig_head[signo] = sig;
  loop->sig_tail[signo] = sig;
  sig->flags_ |= AX__ACTIVE;
  loop->nactive++;
  return 0;
}

int ax_signal_stop(ax_signal_t *sig) {
  if (sig == NULL)
    return -EINVAL;
  if (!(sig->flags_ & AX__ACTIVE))
    return 0;
  ax_loop_t *loop = sig->loop;
  AX__ASSERT_LOOP_THREAD(loop);
  int signo = sig->signo;
  if (loop->sig_next == sig)
    loop->sig_next = sig->next_;
  if (sig->prev_ != NULL)
    sig->prev_->next_ = sig->next_;
  else
    loop->sig_head[signo] = sig->next_;
  if (sig->next_ != NULL)
    sig->next_->prev_ = sig->prev_;
  else
    loop->sig_tail[signo] = sig->prev_;
  sig->next_ = sig->prev_ = NULL;
  sig->flags_ &= ~(unsigned)AX__ACTIVE;
  loop->nactive--;

  if (loop->sig_head[signo] == NULL) {
    /* The last watcher: stop reading the signal and give the thread back
     * the mask it had.  A signal still pending now meets its disposition,
     * exactly as it would have without axon. */
    sigdelset(&loop->sig_mask, signo);
    (void)signalfd(loop->sig_fd, &loop->sig_mask, 0);
    if (sigismember(&loop->sig_we_blocked, signo)) {
      sigdelset(&loop->sig_we_blocked, signo);
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, signo);
      pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    }
  }
  return 0;
}

bool ax_signal_active(const ax_signal_t *sig) {
  return sig != NULL && (sig->flags_ & AX__ACTIVE) != 0;
}

void ax__signal_stop_all(ax_loop_t *loop) {
  for (int signo = 1; signo < AX__NSIG; signo++)
    while (loop->sig_head[signo] != NULL)
      ax_signal_stop(loop->sig_head[signo]);
}

void ax__signal_close(ax_loop_t *loop) {
  if (loop->sig_fd < 0)
    return;
  ax_io_stop(&loop->sig_io);
  close(loop->sig_fd);
  loop->sig_fd = -1;
}
