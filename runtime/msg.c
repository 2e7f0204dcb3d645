/* Messages: size classes, allocation from the sending core's pools or malloc, filled headers. */
#include <string.h>

#include "runtime/core.h"

/* The large classes hold a power of two of payload plus the message
 * header, so that a stream reading straight into a message gets a whole
 * 8, 16, ... 128 KiB. */
#define AX__BIG(kib) ((kib) * 1024u + 256u)
static const uint32_t class_size[AX__MSG_CLASSES] = {
    AX__MSG_SMALL, 256, 512, 1024, 2048, 4096, AX__BIG(8), AX__BIG(16), AX__BIG(32), AX__BIG(64),
    AX__BIG(128)};

uint32_t ax__msg_class_size(unsigned cls) { return class_size[cls]; }

ax__msg_t *ax__msg_alloc(ax_ref_t to, size_t payload) {
  if (payload > UINT32_MAX - sizeof(ax__msg_t))
    return NULL; /* ax_msg_t.size could not say it (and need could wrap) */
  size_t need = sizeof(ax__msg_t) + payload;
  ax__core_t *c = ax__tls_core;
  ax__msg_t *m = NULL;
  if (c != NULL && ax__ref_rt(to) == c->rt->index) {
    for (unsigned i = 0; i < AX__MSG_CLASSES; i++) {
      if (need <= class_size[i]) {
        m = ax__pool_alloc(&c->pools[i]);
        if (m != NULL)
          m->home = &c->pools[i];
        break;
      }
    }
  }
  if (m == NULL) {
    m = ax__malloc(need);
    if (m == NULL)
      return NULL;
    m->home = NULL;
  }
  m->sys = 0;
  m->flags = 0;
  m->release = NULL;
  m->m.req = 0;
  return m;
}

ax__msg_t *ax__msg_new(ax_ref_t to, unsigned sys, uint32_t type, const void *data, size_t size,
                       ax_ref_t from) {
  ax__msg_t *m = ax__msg_alloc(to, size);
  if (m == NULL)
    return NULL;
  m->sys = (uint16_t)sys;
  m->m.type = type;
  m->m.size = (uint32_t)size;
  m->m.data = size != 0 ? m->payload : NULL;
  m->m.from = from;
  if (data != NULL && size != 0)
    memcpy(m->payload, data, size);
  return m;
}
