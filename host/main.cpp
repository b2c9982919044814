// ssmhost: entry point; the CLI lives in cli.cpp.
#include "cli.hpp"

int main(int argc, char** argv) { return ssmhost::cli_main(argc, argv); }
