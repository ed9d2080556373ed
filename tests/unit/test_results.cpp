// The HDF5 writer round trip: what ResultFile writes, HDF5 reads back; and
// files only appear when committed.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "core/errors.hpp"

#include "results/writer.hpp"

namespace fs = std::filesystem;
using paralab::results::ResultFile;

namespace {

fs::path temp_dir() {
  fs::path dir = fs::temp_directory_path() / ("paralab_test_results_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir;
}

std::string read_string_attr(hid_t object, const char* name) {
  hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
  EXPECT_GE(attr, 0) << name;
  hid_t type = H5Aget_type(attr);
  char* text = nullptr;
  H5Aread(attr, type, &text);
  std::string value = text ? text : "";
  H5free_memory(text);
  H5Tclose(type);
  H5Aclose(attr);
  return value;
}

template <class T>
std::vector<T> read_numeric_attr(hid_t object, const char* name, hid_t native) {
  hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
  EXPECT_GE(attr, 0) << name;
  hid_t space = H5Aget_space(attr);
  std::vector<T> values(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  H5Aread(attr, native, values.data());
  H5Sclose(space);
  H5Aclose(attr);
  return values;
}

paralab::results::Provenance sample_provenance() {
  paralab::results::Provenance p;
  p.app = "unit";
  p.suite_version = "9.9.9";
  p.git_commit = "abc123";
  p.utc_time = "2026-11-22T00:00:00Z";
  p.command_line = "unit --x 'a b'";
  p.world_size = 3;
  p.hosts = {"node1", "node2"};
  p.backend = "mpi";
  p.device = "cpu";
  p.device_name = "test CPU";
  p.mode = "measure";
  p.config_json = R"({"x":"a b"})";
  return p;
}

}  // namespace

TEST(ResultFile, RoundTrip) {
  const fs::path path = temp_dir() / "round_trip.h5";
  {
    ResultFile file(path.string());
    file.write_provenance(sample_provenance());
    auto point = file.add_point();
    point.attr("op", "allreduce");
    point.attr("bytes", int64_t{1024});
    point.attr("busbw_GBps", 12.5);
    point.attr("parameters", std::vector<std::string>{"op", "bytes"});
    const std::vector<double> times = {1, 2, 3, 4, 5, 6};
    point.dataset("time_s", times, {3, 2}, "s", "iteration,rank");
    file.add_point().attr("op", "second");
    EXPECT_FALSE(fs::exists(path)) << "visible before commit";
    file.commit();
  }
  ASSERT_TRUE(fs::exists(path));
  for (const auto& entry : fs::directory_iterator(path.parent_path()))
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << entry.path();

  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_EQ(read_numeric_attr<int64_t>(f, "schema_version", H5T_NATIVE_INT64),
            std::vector<int64_t>{paralab::results::kSchemaVersion});
  EXPECT_EQ(read_string_attr(f, "app"), "unit");
  EXPECT_EQ(read_string_attr(f, "command_line"), "unit --x 'a b'");
  EXPECT_EQ(read_string_attr(f, "config"), R"({"x":"a b"})");
  EXPECT_EQ(read_numeric_attr<int64_t>(f, "world_size", H5T_NATIVE_INT64), std::vector<int64_t>{3});

  hid_t g = H5Gopen2(f, "/points/000000", H5P_DEFAULT);
  ASSERT_GE(g, 0);
  EXPECT_EQ(read_string_attr(g, "op"), "allreduce");
  EXPECT_EQ(read_numeric_attr<int64_t>(g, "bytes", H5T_NATIVE_INT64), std::vector<int64_t>{1024});
  EXPECT_EQ(read_numeric_attr<double>(g, "busbw_GBps", H5T_NATIVE_DOUBLE),
            std::vector<double>{12.5});
  hid_t d = H5Dopen2(g, "time_s", H5P_DEFAULT);
  ASSERT_GE(d, 0);
  hid_t space = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  ASSERT_EQ(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], 3u);
  EXPECT_EQ(dims[1], 2u);
  std::vector<double> back(6);
  H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data());
  EXPECT_EQ(back, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(read_string_attr(d, "dims"), "iteration,rank");
  EXPECT_EQ(read_string_attr(d, "units"), "s");
  H5Sclose(space);
  H5Dclose(d);
  H5Gclose(g);
  EXPECT_GT(H5Lexists(f, "/points/000001", H5P_DEFAULT), 0);
  EXPECT_EQ(H5Lexists(f, "/points/000002", H5P_DEFAULT), 0);
  H5Fclose(f);
  fs::remove_all(path.parent_path());
}

TEST(ResultFile, UncommittedLeavesNothing) {
  const fs::path dir = temp_dir();
  const fs::path path = dir / "abandoned.h5";
  {
    ResultFile file(path.string());
    file.write_provenance(sample_provenance());
    file.add_point().attr("x", 1.0);
    EXPECT_TRUE(fs::exists(path.string() + ".lock")) << "the path is claimed while writing";
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "an abandoned result left files behind";
  fs::remove_all(dir);
}

TEST(ResultFile, CreatesMissingFolders) {
  const fs::path dir = temp_dir();
  const fs::path path = dir / "a" / "b" / "nested.h5";
  ResultFile file(path.string());
  file.commit();
  EXPECT_TRUE(fs::exists(path));
  fs::remove_all(dir);
}

TEST(ResultFile, UnwritablePathIsAClearError) {
  try {
    ResultFile file("/dev/null/cannot.h5");
    FAIL() << "no exception";
  } catch (const paralab::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot write results to '/dev/null/cannot.h5'"),
              std::string::npos)
        << e.what();
  }
}

TEST(ResultFile, ShapeMismatchIsRejected) {
  const fs::path dir = temp_dir();
  ResultFile file((dir / "bad.h5").string());
  const std::vector<double> values = {1, 2, 3};
  EXPECT_THROW(file.add_point().dataset("x", values, {2, 2}, "s", "a,b"), paralab::RuntimeError);
  fs::remove_all(dir);
}

TEST(ResultFile, MirrorsPointAttributesAsJsonInOrder) {
  const fs::path path = temp_dir() / "mirror.h5";
  ResultFile file(path.string());
  file.add_point().attr("before", 1.0);  // added before mirroring: not mirrored
  file.mirror_points();
  for (int i = 0; i < 2; ++i) {
    auto point = file.add_point();
    point.attr("op", "allreduce");
    point.attr("bytes", int64_t{1024} << i);
    point.attr("busbw_GBps", 12.5 * (i + 1));
    point.attr("metrics", std::vector<std::string>{"busbw_GBps"});
    point.dataset("time_s", std::vector<double>{1, 2}, {2}, "s", "iteration");  // not in JSON
  }
  ASSERT_EQ(file.point_json().size(), 2u);
  EXPECT_EQ(file.point_json()[1]->dump(),
            R"({"point":2,"op":"allreduce","bytes":2048,"busbw_GBps":25.0,)"
            R"("metrics":["busbw_GBps"]})");
}
