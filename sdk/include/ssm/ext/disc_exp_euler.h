/*
 * ssm/ext/disc_exp_euler.h — the "exp-Euler" extension of a discretization
 * plugin (C11, like abi.h).
 *
 * A discretization whose map is
 *     a(z)    = e^z      (A discretized exactly)
 *     beta(z) = 1        (B by Euler: Bbar = dt B)
 * (Mamba's selective scan, docs/math.md §0, the "S6" row; the `s6disc`
 * plugin) returns this struct from get_extension(self, SSM_EXT_DISC_EXP_EULER).
 * A layer with a fast path for this map (the s6 layer's selective scan: one
 * vectorised exp per state element, no beta) asks for it; absent (NULL), it
 * evaluates the plugin's map. The struct stays valid as long as the plugin
 * object that returned it.
 *
 * Versioned by its id; struct_size first, fields only appended (abi.h rules).
 */
#ifndef SSM_EXT_DISC_EXP_EULER_H
#define SSM_EXT_DISC_EXP_EULER_H

#include <stdint.h>

#define SSM_EXT_DISC_EXP_EULER "ssm.disc.exp_euler/1"

typedef struct ssm_disc_exp_euler {
  uint32_t struct_size;
} ssm_disc_exp_euler;

#endif /* SSM_EXT_DISC_EXP_EULER_H */
