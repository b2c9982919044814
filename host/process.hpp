// Process-wide settings a training program wants before it allocates.
#pragma once

namespace ssmhost {
// Keeps large freed blocks in the heap instead of returning them to the OS:
// a training step frees and reallocates the same big activations every step,
// and glibc's default (mmap above 128 KiB-32 MiB, trim on free) turns that
// into page faults and zeroing on every step.
void tune_process();
}  // namespace ssmhost
