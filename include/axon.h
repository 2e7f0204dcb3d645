/* axon umbrella header: includes every public area. */
#ifndef AXON_H
#define AXON_H

#include "axon/common.h"
#include "axon/fiber.h"
#include "axon/file.h"
#include "axon/group.h"
#include "axon/actor.h"
#include "axon/loop.h"
#include "axon/port.h"
#include "axon/process.h"
#include "axon/runtime.h"
#include "axon/source.h"
#include "axon/stream.h"
#include "axon/supervisor.h"
#include "axon/version.h"
#include "axon/work.h"

#endif /* AXON_H */
