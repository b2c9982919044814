/*
 * ssm/ext/text_vocab.h — the "text vocabulary" extension of a dataset or a
 * task plugin (C11, like abi.h).
 *
 * A plugin whose token ids stand for text (the `text` dataset, the `char_lm`
 * task) returns this struct from get_extension(self, SSM_EXT_TEXT_VOCAB), so
 * that whoever holds the ids can turn them back into text: a task that reads
 * the dataset, the host that records the vocabulary in the run log, a
 * generator that prints what a model writes. Absent (NULL): the ids are not
 * text.
 *
 *   SSM_TEXT_VOCAB_BYTE: size 256, id = the byte's value; codepoints is NULL.
 *     Decoding writes the bytes as they are.
 *   SSM_TEXT_VOCAB_CHAR: id i is the Unicode code point codepoints[i]
 *     (strictly increasing, none a surrogate or above U+10FFFF); decoding
 *     writes each as UTF-8.
 *
 * The struct and its array live as long as the plugin object. Versioned by
 * its id; struct_size first, fields only appended (abi.h rules).
 */
#ifndef SSM_EXT_TEXT_VOCAB_H
#define SSM_EXT_TEXT_VOCAB_H

#include <stdint.h>

#define SSM_EXT_TEXT_VOCAB "ssm.text_vocab/1"

#define SSM_TEXT_VOCAB_BYTE 1
#define SSM_TEXT_VOCAB_CHAR 2

typedef struct ssm_text_vocab {
  uint32_t struct_size;
  int32_t kind;                /* SSM_TEXT_VOCAB_BYTE or SSM_TEXT_VOCAB_CHAR */
  int64_t size;                /* token ids are 0 .. size-1 */
  const uint32_t* codepoints;  /* CHAR: size code points, by id; BYTE: NULL */
} ssm_text_vocab;

/* The "text baselines" extension of a language-modelling task (char_lm):
 * the bits per token of two count models on exactly the tokens the task's
 * evaluation scores, fitted on its training split with add-one smoothing.
 * A model that learned anything beats the unigram; one that uses more than
 * the previous token beats the bigram. */
#define SSM_EXT_TEXT_BASELINES "ssm.text_baselines/1"

typedef struct ssm_text_baselines {
  uint32_t struct_size;
  double unigram_bpc; /* -mean log2 (count(y) + 1) / (n + V) */
  double bigram_bpc;  /* -mean log2 (count(x, y) + 1) / (count(x) + V), x the token before y */
  int64_t n_scored;   /* how many evaluation targets the means run over */
} ssm_text_baselines;

#endif /* SSM_EXT_TEXT_VOCAB_H */
