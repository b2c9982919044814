/*
 * ssm/ext/seq_targets.h — the "sequence targets" extension of a dataset
 * plugin (C11, like abi.h).
 *
 * A dataset of sequences (the `hdf5` dataset of a user's arrays) returns this
 * from get_extension(self, SSM_EXT_SEQ_TARGETS) to say what a task needs
 * beyond ssm_dataset_info: the vocabulary of token inputs, and targets that
 * are one class per step rather than one label per example. The `arrays`
 * task reads it. Absent (NULL): labels come from read(), inputs are whatever
 * example_dtype says.
 *
 * Versioned by its id; struct_size first, fields only appended (abi.h rules).
 */
#ifndef SSM_EXT_SEQ_TARGETS_H
#define SSM_EXT_SEQ_TARGETS_H

#include <stdint.h>

#include <ssm/abi.h>

#define SSM_EXT_SEQ_TARGETS "ssm.dataset.seq_targets/1"

typedef struct ssm_seq_targets {
  uint32_t struct_size;
  int64_t vocab_size; /* int32 token examples (L): ids are 0..vocab_size-1; real examples: 0 */
  int32_t per_step;   /* 0: one label per example (read()'s labels); 1: one class per step (read_targets) */
  int64_t n_classes;  /* classes of the targets (labels or per-step) */
  /* per_step: fills y (n, L) int32 with the classes of examples `indices` of
   * `split`; -1 where a step has no target. NULL when per_step is 0. */
  ssm_status* (*read_targets)(void* self, int32_t split, const int64_t* indices, int64_t n, DLTensor* y);
  void* self; /* the first argument of read_targets */
} ssm_seq_targets;

#endif /* SSM_EXT_SEQ_TARGETS_H */
