// build_info.hpp: the suite version and the git commit this binary was built from.
#pragma once

namespace paralab {

const char* suite_version();  // e.g. "0.1.0"
const char*
git_commit();  // full SHA, "-dirty" appended for uncommitted changes; "unknown" outside git

}  // namespace paralab
