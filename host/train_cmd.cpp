#include "commands.hpp"
namespace ssmhost {
int run_train(const std::vector<std::string>&) { throw Error("train: not built yet"); }
std::string train_help() { return "train\n"; }
int run_report(const std::vector<std::string>&) { throw Error("report: not built yet"); }
std::string report_help() { return "report\n"; }
}
