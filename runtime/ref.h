/* References: the 64 bits that name an actor or a port (runtime, core, slot, generation). */
#ifndef AXON_RUNTIME_REF_H
#define AXON_RUNTIME_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/actor.h"

/*
 * A reference is bounded (1 bit) | gen (23 bits) | runtime (4) | core (8) |
 * slot (28).  The top bit says the actor's mailbox has a bound
 * (ax_spawn_opts_t.mailbox_max), so a sender knows from the reference
 * alone whether it must count: unbounded sends never look at it again.  The
 * runtime index finds the runtime in a process-wide table (rt.c), the core
 * index finds the slot table the slot is in (a core's, or the runtime's
 * port table for AX__REF_NO_CORE), and the generation must match the
 * slot's current one (table.h), so a reference to a stopped actor never
 * reaches the memory of whatever took its slot.  AX_REF_NONE (0) names
 * nothing.
 */
#define AX__REF_SLOT_BITS 28
#define AX__REF_CORE_BITS 8
#define AX__REF_RT_BITS 4
#define AX__REF_GEN_BITS 23
#define AX__REF_BOUNDED (1ull << 63)
#define AX__MAX_RTS (1u << AX__REF_RT_BITS)
#define AX__REF_NO_CORE 255u /* the core field of an entity of no core (a port) */

static inline ax_ref_t ax__ref_make(uint32_t gen, unsigned rt, unsigned core, uint32_t slot) {
  return ((uint64_t)gen << 40) | ((uint64_t)rt << 36) | ((uint64_t)core << 28) | slot;
}
static inline uint32_t ax__ref_gen(ax_ref_t r) { return (uint32_t)(r >> 40) & 0x7fffffu; }
static inline bool ax__ref_bounded(ax_ref_t r) { return (r & AX__REF_BOUNDED) != 0; }
static inline unsigned ax__ref_rt(ax_ref_t r) { return (unsigned)(r >> 36) & 0xf; }
static inline unsigned ax__ref_core(ax_ref_t r) { return (unsigned)(r >> 28) & 0xff; }
static inline uint32_t ax__ref_slot(ax_ref_t r) { return (uint32_t)r & 0xfffffff; }

#endif /* AXON_RUNTIME_REF_H */
