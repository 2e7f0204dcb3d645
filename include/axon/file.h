/* Files and paths: every operation completes as a message to the actor that asked, and never blocks a core. */
#ifndef AXON_FILE_H
#define AXON_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "axon/actor.h"
#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A regular file cannot be watched for readiness (epoll refuses it, and a
 * read of a file on a slow disk blocks whatever poll says), so files are
 * not sources: each operation is a request that completes later, as one
 * AX_MSG_FILE message (ax_file_done_t) to the actor that made it, on that
 * actor's core.  Every request carries a tag of the caller's, returned in
 * its message.  Requests run on the core's io_uring where the kernel
 * allows it, else on the runtime's work pool (work.h; ax_file_backend
 * says which).  Either way the pool's work_queue bounds them (queued work
 * on the pool, requests in flight on each core's ring): past it a request
 * is -EAGAIN at once (a close never is).  An owner that stops drops its
 * requests' results; on io_uring its opens and reads in flight and its
 * requests on FIFOs and devices are cancelled, the rest finish.
 *
 * Buffers are axon's.  A write copies its bytes when it is requested; a
 * read lands in the message that reports it, so nothing the caller owns
 * is written after the call returns, and a caller that stops leaves no
 * operation writing into freed memory.
 *
 * Order.  Requests run in parallel on the pool's threads and may complete
 * in any order, as with the kernel's own asynchronous I/O: a caller that
 * needs one done before the next (a write, then an fsync) waits for the
 * first message.  A close always comes last: ax_file_close waits for every
 * request on the file made before it, and its message follows theirs.
 *
 * Errors come back as the kernel said them, in ax_file_done_t.result
 * (-ENOENT, -EISDIR, -EBADF for a write to a file opened read-only,
 * -ENOSPC, ...).  A read at or past the end of the file gives 0 bytes; a
 * read that reaches the end gives the bytes that were there.
 *
 * Ownership.  A file belongs to the actor that opened it: only that actor,
 * on its core, makes requests on it.  An actor that stops closes its files
 * (after the requests still running on them end; their results are
 * dropped, as with work).
 *
 * Threads.  Every call here: the owner's core (a behaviour, a hook or a
 * fiber); the fiber calls at the end: the owning fiber only.
 */

typedef struct ax_file ax_file_t;

/* What a request was (ax_file_done_t.op). */
typedef enum ax_file_op {
  AX_FILE_OPEN = 1,
  AX_FILE_READ,
  AX_FILE_WRITE,
  AX_FILE_SYNC,
  AX_FILE_STAT,
  AX_FILE_CLOSE,
  AX_FILE_UNLINK,
  AX_FILE_RENAME,
  AX_FILE_MKDIR,
  AX_FILE_RMDIR,
  AX_FILE_STAT_PATH,
} ax_file_op_t;

/* The payload of AX_MSG_FILE. */
typedef struct ax_file_done {
  uint64_t id;       /* the request's id (unique within the runtime) */
  uint64_t tag;      /* the caller's tag */
  ax_file_t *file;   /* the file; for AX_FILE_OPEN the new one (NULL when
                        it failed); NULL for the path requests */
  uint32_t op;       /* AX_FILE_* */
  int64_t result;    /* bytes read or written, 0, or a negative errno */
  size_t len;        /* AX_FILE_READ: bytes in data; AX_FILE_STAT*: sizeof
                        (struct stat); else 0 */
  const void *data;  /* what was read, or a struct stat; valid as the
                        message is (until the behaviour returns) */
} ax_file_done_t;

/* The most one read or write request moves. */
#define AX_FILE_IO_MAX ((size_t)1 << 30)

/* Opens path (open(2)'s flags and mode; O_CLOEXEC is added) for self.
 * The AX_MSG_FILE{AX_FILE_OPEN} that follows carries the file in .file,
 * or NULL and the error in .result.  Returns 0.  Errors: -EINVAL (NULL
 * self or path, O_NONBLOCK, O_PATH or O_DIRECT in flags: requests copy
 * through their message, whose bytes O_DIRECT's alignment rules would
 * refuse), -EPERM (not on self's core), and those of ax_work_submit
 * (-EAGAIN, -ENOMEM, -ESHUTDOWN). */
AX_API int ax_file_open(ax_actor_t *self, const char *path, int flags, mode_t mode, uint64_t tag);

/* Reads up to len bytes at offset off; AX_MSG_FILE{AX_FILE_READ} carries
 * them.  Short only at the end of the file (a FIFO or a device: what it
 * gave).  The message is made now with room for len bytes: read in blocks
 * (64 KiB to 1 MiB), not whole files.  Errors: -EINVAL (NULL file,
 * len 0 or above AX_FILE_IO_MAX, off + len above INT64_MAX), -EPERM (not
 * the owner's core), -EBADF (the file is closing), and those of
 * ax_work_submit. */
AX_API int ax_file_read(ax_file_t *file, uint64_t off, size_t len, uint64_t tag);

/* Writes len bytes of data at offset off (copied now); the result is the
 * count written (all of them, unless an error came first).  Errors: as
 * ax_file_read, -EINVAL for NULL data. */
AX_API int ax_file_write(ax_file_t *file, uint64_t off, const void *data, size_t len,
                         uint64_t tag);

/* Writes the buffers of iov in order, as one write at off (copied now).
 * Errors: as ax_file_write, -EINVAL for iovcnt outside 1..IOV_MAX. */
AX_API int ax_file_writev(ax_file_t *file, uint64_t off, const struct iovec *iov, int iovcnt,
                          uint64_t tag);

/* fsync(2), or fdatasync(2) when data_only.  Errors: as ax_file_read. */
AX_API int ax_file_sync(ax_file_t *file, bool data_only, uint64_t tag);

/* fstat(2): AX_MSG_FILE{AX_FILE_STAT} carries the struct stat in .data.
 * Errors: as ax_file_read. */
AX_API int ax_file_stat(ax_file_t *file, uint64_t tag);

/* Closes the file once every request made on it before has completed
 * (their messages come first); AX_MSG_FILE{AX_FILE_CLOSE} then carries
 * close(2)'s result.  From this call on the file takes no request
 * (-EBADF) and, once that message is handled, the handle is gone.
 * Errors: -EINVAL (NULL file), -EPERM, -EBADF (closing already). */
AX_API int ax_file_close(ax_file_t *file, uint64_t tag);

/* What file requests run on in this process: "io_uring" (a ring per core,
 * completions reaped by the core's loop) or "pool" (the work pool: no
 * io_uring here, or AXON_FILES=pool in the environment).  The first call
 * probes io_uring.  Any thread. */
AX_API const char *ax_file_backend(void);

/* The file's descriptor (for fcntl locks, posix_fadvise, ...: never close
 * it); -1 once it is closing.  On the work pool a FIFO or a device opened
 * without O_NONBLOCK is made non-blocking (docs/io/files.md).  The
 * owner's core. */
AX_API int ax_file_fd(const ax_file_t *file);

/* Path requests, each completing as AX_MSG_FILE with .file NULL:
 * unlink(2), rename(2), mkdir(2), rmdir(2) and stat(2) (.data: the
 * struct stat).  Errors: -EINVAL (NULL argument), -EPERM, and those of
 * ax_work_submit. */
AX_API int ax_path_unlink(ax_actor_t *self, const char *path, uint64_t tag);
AX_API int ax_path_rename(ax_actor_t *self, const char *from, const char *to, uint64_t tag);
AX_API int ax_path_mkdir(ax_actor_t *self, const char *path, mode_t mode, uint64_t tag);
AX_API int ax_path_rmdir(ax_actor_t *self, const char *path, uint64_t tag);
AX_API int ax_path_stat(ax_actor_t *self, const char *path, uint64_t tag);

/* ------------------------------------------------------------------------ */
/* In a fiber                                                                */

/* Waits for the AX_MSG_FILE with the tag tag (made by a request of this
 * fiber) and stores its payload in *done; other messages stay queued.
 * *done is valid until the fiber's next waiting call.  Returns 0.
 * Errors: -EINVAL (NULL done), -EPERM (not this fiber), -ETIMEDOUT,
 * -ECANCELED (stopped: the request goes on, its result is dropped). */
AX_API int ax_file_await(ax_actor_t *self, uint64_t tag, int64_t deadline,
                         const ax_file_done_t **done);

/* Blocking-style forms for a fiber that owns the file: pread(2),
 * pwrite(2), preadv(2), pwritev(2).  The fiber parks (not its core) until
 * the request completes; buf may be on the fiber's stack (the bytes go
 * through axon's buffer).  Return the count read or written.  Errors: as
 * ax_file_read and ax_file_await (-ECANCELED: nothing was copied into
 * buf; also where ax_file_read would say -ESHUTDOWN, since the runtime is
 * stopping and this fiber with it), and the kernel's for the request. */
AX_API ssize_t ax_file_pread(ax_file_t *file, void *buf, size_t len, uint64_t off);
AX_API ssize_t ax_file_pwrite(ax_file_t *file, const void *buf, size_t len, uint64_t off);
AX_API ssize_t ax_file_preadv(ax_file_t *file, const struct iovec *iov, int iovcnt, uint64_t off);
AX_API ssize_t ax_file_pwritev(ax_file_t *file, const struct iovec *iov, int iovcnt,
                               uint64_t off);

#ifdef __cplusplus
}
#endif

#endif /* AXON_FILE_H */
