// ssmhost: entry point; the CLI lives in cli.cpp.
#include "cli.hpp"
#include "process.hpp"

int main(int argc, char** argv) {
  ssmhost::tune_process();
  return ssmhost::cli_main(argc, argv);
}
