// The ssmhost command line: subcommands list, info, train (default), report, ...
#pragma once

namespace ssmhost {
int cli_main(int argc, char** argv);
}
