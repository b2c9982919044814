#include "task_names.hpp"

#include <ssm/abi.h>

namespace ssmhost {

const char* input_kind_name(int32_t k) {
  return k == SSM_INPUT_TOKENS ? "tokens" : k == SSM_INPUT_REAL ? "real" : "?";
}

const char* readout_name(int32_t r) {
  switch (r) {
    case SSM_READOUT_MEAN: return "mean";
    case SSM_READOUT_LAST: return "last";
    case SSM_READOUT_LAST_M: return "last_m";
    case SSM_READOUT_ALL: return "all";
  }
  return "?";
}

const char* loss_name(int32_t l) {
  return l == SSM_LOSS_CROSS_ENTROPY ? "cross_entropy" : l == SSM_LOSS_MSE ? "mse" : "?";
}

const char* metric_name(int32_t m) {
  switch (m) {
    case SSM_METRIC_ACCURACY: return "accuracy";
    case SSM_METRIC_BPC: return "bpc";
    case SSM_METRIC_MSE: return "mse";
  }
  return "?";
}

}  // namespace ssmhost
