/*
 * ssm/ext/disc_exp.h — the "exponential" extension of a discretization
 * plugin (C11, like abi.h).
 *
 * A discretization whose map is, for some tau > 0,
 *     a(z)    = e^{tau z}
 *     beta(z) = phi(z) = (e^z - 1) / z      (not tau-scaled)
 * (tau = 1: zero-order hold "zoh"; tau = its option: "async", A stepped by
 * tau dt and B held over dt; see docs/math.md §0) returns this struct from
 * get_extension(self, SSM_EXT_DISC_EXP). A layer that has an exact path for
 * this family (S4's DPLR kernel: the powers of e^{tau z} in closed form)
 * asks for it and reads tau; a third party's tau works the same way. Absent
 * (NULL): the map is not of this family. The struct stays valid as long as
 * the plugin object that returned it.
 *
 * Versioned by its id; struct_size first, fields only appended (abi.h rules).
 */
#ifndef SSM_EXT_DISC_EXP_H
#define SSM_EXT_DISC_EXP_H

#include <stdint.h>

#define SSM_EXT_DISC_EXP "ssm.disc.exp/1"

typedef struct ssm_disc_exp {
  uint32_t struct_size;
  double tau; /* > 0 */
} ssm_disc_exp;

#endif /* SSM_EXT_DISC_EXP_H */
