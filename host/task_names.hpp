// Names of the task description's enums (ssm_task_info), for messages,
// `validate`, the progress line and the run log. "?" for an unknown value.
#pragma once

#include <cstdint>

namespace ssmhost {

const char* input_kind_name(int32_t kind);  // tokens, real
const char* readout_name(int32_t readout);  // mean, last, last_m, all
const char* loss_name(int32_t loss);        // cross_entropy, mse
const char* metric_name(int32_t metric);    // accuracy, bpc, mse

}  // namespace ssmhost
