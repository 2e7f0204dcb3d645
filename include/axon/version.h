/* axon version macros; the build reads the numbers from this file. */
#ifndef AXON_VERSION_H
#define AXON_VERSION_H

#define AX_VERSION_MAJOR 0
#define AX_VERSION_MINOR 1
#define AX_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" as a string literal. */
#define AX_VERSION_STRING "0.1.0"

/* One number that compares in release order: 0xMMmmpp. */
#define AX_VERSION_HEX \
  ((AX_VERSION_MAJOR << 16) | (AX_VERSION_MINOR << 8) | AX_VERSION_PATCH)

#endif /* AXON_VERSION_H */
