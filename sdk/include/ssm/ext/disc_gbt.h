/*
 * ssm/ext/disc_gbt.h — the "generalized bilinear" extension of a
 * discretization plugin (C11, like abi.h).
 *
 * A discretization whose map is, for some alpha in [0, 1],
 *     a(z)    = (1 + (1 - alpha) z) / (1 - alpha z)
 *     beta(z) = 1 / (1 - alpha z)
 * (alpha = 0: forward Euler "dirac", 1/2: bilinear, 1: backward Euler; see
 * docs/math.md §0) returns this struct from get_extension(self,
 * SSM_EXT_DISC_GBT). A layer that can use the closed form of the whole
 * family (S4's DPLR kernel: a rational generating function through the
 * Cauchy kernel) asks for it and reads alpha; a third party's alpha works the
 * same way. Absent (NULL): the map is not of this family.
 *
 * Versioned by its id; struct_size first, fields only appended (abi.h rules).
 */
#ifndef SSM_EXT_DISC_GBT_H
#define SSM_EXT_DISC_GBT_H

#include <stdint.h>

#define SSM_EXT_DISC_GBT "ssm.disc.gbt/1"

typedef struct ssm_disc_gbt {
  uint32_t struct_size;
  double alpha; /* in [0, 1] */
} ssm_disc_gbt;

#endif /* SSM_EXT_DISC_GBT_H */
