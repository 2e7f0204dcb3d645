/* Process groups and shared payloads: one message to many actors, one copy of its bytes. */
#ifndef AXON_GROUP_H
#define AXON_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/actor.h"
#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Shared payloads, like Erlang's reference-counted binaries.  A buffer
 * from ax_shared_new carries a count of references; every message that
 * carries it holds one while it waits and while the receiver handles it,
 * and the buffer is freed when the last reference goes, on whichever
 * thread that is.  Once sent, the bytes are read-only: every receiver sees
 * the same memory, on its own core, at the same time.
 *
 * Threads: every function here may be called from any thread.
 */

/* A new shared buffer of size bytes (16-byte aligned, not initialised),
 * holding one reference: the caller's, dropped with ax_shared_unref.
 * Returns NULL with errno EINVAL (size 0 or above AX_MSG_MAX) or ENOMEM. */
AX_API void *ax_shared_new(size_t size);

/* Adds a reference to buf (a buffer from ax_shared_new, or the data of a
 * message for which ax_msg_shared is true) and returns buf; NULL for NULL.
 * Use it to keep a received shared payload after the behaviour returns. */
AX_API void *ax_shared_ref(const void *buf);

/* Drops one reference; the last one frees the buffer.  NULL is ignored. */
AX_API void ax_shared_unref(const void *buf);

/* The size buf was made with (0 for NULL). */
AX_API size_t ax_shared_size(const void *buf);

/* Sends the first size bytes of buf without copying them: the message
 * holds a reference of its own until the receiver's behaviour returns, so
 * the caller keeps its reference (drop it when done).  The receiver sees
 * buf as msg->data; ax_msg_take(msg) hands it the message's reference
 * (then it calls ax_shared_unref itself).  Errors: as ax_send, and -EINVAL
 * for a NULL buf or a size above ax_shared_size(buf); on any error the
 * message's reference is dropped again and the caller's is untouched. */
AX_API int ax_send_shared(ax_ref_t to, uint32_t type, const void *buf, size_t size);

/* True when msg's data is a shared buffer (sent with ax_send_shared or
 * ax_group_send).  Receiving actor (behaviour or fiber) only: on a port's
 * thread it is false, as ax_msg_take is NULL there, because the port
 * hands out a copy of the message; a port's thread that wants to keep a
 * payload it knows to be shared (by its type) calls ax_shared_ref on
 * msg.data before its next ax_port_recv. */
AX_API bool ax_msg_shared(const ax_msg_t *msg);

/*
 * Process groups, like Erlang's pg: a set of actors (or ports) that one
 * call sends to.  Members join and leave from any thread; a member that
 * stops leaves by itself: from then on it is not counted, listed or sent
 * to, and its entry is dropped at the next send or listing, or when the
 * group grows, so a group's memory follows its live members.
 *
 * A group is a lock, an array of references in the order they joined and
 * an index on it (about 16 to 24 bytes per member).  A send copies the
 * array under the lock (8 bytes per member, on the heap above 64 members)
 * and queues one message per member after releasing it, in that order:
 * it reaches exactly the members that had joined when it began, one that
 * leaves meanwhile included, and joins, leaves and other sends wait only
 * for that copy, never for the queueing.  From a thread that is no core,
 * the queueing waits for a core that lags behind (actor.h), so a
 * broadcast to many members of a busy core takes as long as that core
 * needs to make room; the core's own actors may use the group meanwhile.
 * Ordering: each member gets the messages of one sender in order, as with
 * ax_send; nothing is promised between members.
 */
typedef struct ax_group ax_group_t;

/* A new, empty group in *group.  Errors: -EINVAL (group NULL), -ENOMEM. */
AX_API int ax_group_new(ax_group_t **group);

/* Frees a group.  Its members are untouched.  No thread may be using the
 * group, or use it afterwards; NULL is ignored. */
AX_API void ax_group_free(ax_group_t *group);

/* Adds the actor or port ref, of any runtime (a group belongs to none:
 * a member whose runtime was freed is one that stopped).  Errors:
 * -EINVAL (NULL group, AX_REF_NONE),
 * -ESRCH (ref names nothing alive), -EEXIST (already a member), -ENOMEM. */
AX_API int ax_group_join(ax_group_t *group, ax_ref_t ref);

/* Removes ref.  Errors: -EINVAL (NULL group), -ENOENT (not a member). */
AX_API int ax_group_leave(ax_group_t *group, ax_ref_t ref);

/* True when ref is a live member. */
AX_API bool ax_group_has(ax_group_t *group, ax_ref_t ref);

/* Stores up to max of the live members in out (in no particular order)
 * and returns how many live members there are, which may be more than
 * max: call with max 0 to size the array.  Errors: -EINVAL (NULL group,
 * out NULL with max > 0). */
AX_API int ax_group_members(ax_group_t *group, ax_ref_t *out, size_t max);

/* Sends a message to every member, from the calling actor as ax_send
 * would.  Payloads of up to AX_GROUP_COPY_MAX bytes are copied into each
 * message; a larger one is copied once into a shared buffer that every
 * message references.  Returns the number of members the message was
 * queued for.  A member whose mailbox bound is reached (-EAGAIN) is
 * skipped and not counted, so a result below ax_group_members(g, NULL, 0)
 * says some were full.  Errors: as ax_send for the arguments (-EINVAL),
 * -ENOMEM when the shared copy cannot be made (nothing was sent). */
AX_API int ax_group_send(ax_group_t *group, uint32_t type, const void *data, size_t size);

/* Payloads above this many bytes go out as one shared buffer. */
#define AX_GROUP_COPY_MAX 256

/* Sends the first size bytes of a shared buffer to every member, each
 * message holding a reference (the caller keeps its own).  Returns and
 * errors as ax_group_send, and as ax_send_shared for buf and size. */
AX_API int ax_group_send_shared(ax_group_t *group, uint32_t type, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* AXON_GROUP_H */
