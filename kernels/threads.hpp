// threads.hpp: how many threads a rank's CPU kernels (OpenMP and OpenBLAS)
// use. By default a rank uses the cores it owns: the host's cores divided by
// the ranks on the host, and no more than the cores it is bound to, so ranks
// never oversubscribe the machine by accident.
#pragma once

namespace paralab::kernels {

// Cores of this host divided by local_ranks, at most the cores this process
// is bound to (its affinity mask), at least 1.
int default_threads(int local_ranks);
// Sets the thread count of OpenMP regions and of OpenBLAS.
void set_threads(int threads);
int threads();

}  // namespace paralab::kernels
