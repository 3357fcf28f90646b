// Bindings of k-means and nearest-centroid search (annx.KMeans / annx.kmeans).
#include <pybind11/stl.h>

#include "annx/cluster/kmeans.h"
#include "glue.h"

namespace annx::py_glue {

void bind_cluster(py::module_& m) {
  m.def(
      "kmeans",
      [](const CArray<float>& x, int64_t k, int niter, int nredo, uint64_t seed,
         const std::string& init, int64_t max_points_per_centroid, int64_t min_points_per_centroid,
         bool spherical, bool ip, int threads, const py::object& progress) {
        ANNX_CHECK(InvalidArgument, x.ndim() == 2, "x must be a 2-D array");
        ANNX_CHECK(InvalidArgument, k >= 1, "k must be >= 1, got ", k);
        ANNX_CHECK(InvalidArgument, max_points_per_centroid >= 0 && min_points_per_centroid >= 0,
                   "points-per-centroid bounds must be >= 0");
        KMeansOptions o;
        o.niter = niter;
        o.nredo = nredo;
        o.seed = seed;
        if (init == "auto") {
          o.init = KMeansInit::Auto;
        } else if (init == "random") {
          o.init = KMeansInit::Random;
        } else if (init == "kmeans++" || init == "k-means++") {
          o.init = KMeansInit::PlusPlus;
        } else {
          throw InvalidArgument("unknown k-means init '" + init +
                                "': expected 'auto', 'random' or 'kmeans++'");
        }
        o.max_points_per_centroid = static_cast<size_t>(max_points_per_centroid);
        o.min_points_per_centroid = static_cast<size_t>(min_points_per_centroid);
        o.spherical = spherical;
        o.ip = ip;
        o.threads = threads;
        const size_t n = static_cast<size_t>(x.shape(0)), d = static_cast<size_t>(x.shape(1));
        const float* p = x.data();
        KMeansResult r =
            without_gil(progress, [&] { return kmeans(p, n, d, static_cast<size_t>(k), o); });
        CArray<float> c({static_cast<ssize_t>(k), static_cast<ssize_t>(d)});
        std::copy(r.centroids.begin(), r.centroids.end(), c.mutable_data());
        py::dict out;
        out["centroids"] = c;
        out["objective"] = r.objective;
        out["imbalance"] = r.imbalance;
        out["n_train"] = r.n_train;
        out["n_split"] = r.n_split;
        out["few_points"] = r.few_points;
        return out;
      },
      py::arg("x"), py::arg("k"), py::arg("niter"), py::arg("nredo"), py::arg("seed"),
      py::arg("init"), py::arg("max_points_per_centroid"), py::arg("min_points_per_centroid"),
      py::arg("spherical"), py::arg("ip"), py::arg("threads"), py::arg("progress") = py::none());
  m.def(
      "kmeans_units",
      [](int niter, int nredo) {
        KMeansOptions o;
        o.niter = niter;
        o.nredo = nredo;
        return std::max<size_t>(1, kmeans_units(o));
      },
      py::arg("niter"), py::arg("nredo"));

  m.def(
      "nearest_centroids",
      [](const CArray<float>& centroids, const CArray<float>& x, int64_t p, bool ip, int threads) {
        ANNX_CHECK(InvalidArgument, centroids.ndim() == 2 && centroids.shape(0) >= 1,
                   "centroids must be a non-empty 2-D array");
        ssize_t n = 0;
        const float* xp = rows_ptr(x, centroids.shape(1), "x", &n);
        ANNX_CHECK(InvalidArgument, p >= 1 && p <= centroids.shape(0), "p must be in [1, ",
                   centroids.shape(0), "], got ", p);
        CArray<float> D({n, static_cast<ssize_t>(p)});
        CArray<uint32_t> I({n, static_cast<ssize_t>(p)});
        float* Dp = D.mutable_data();
        uint32_t* Ip = I.mutable_data();
        const float* cp = centroids.data();
        const size_t k = static_cast<size_t>(centroids.shape(0)),
                     d = static_cast<size_t>(centroids.shape(1));
        without_gil([&] {
          CentroidTable(cp, k, d, ip)
              .search(xp, static_cast<size_t>(n), static_cast<size_t>(p), Dp, Ip, threads);
        });
        return py::make_tuple(D, I);
      },
      py::arg("centroids"), py::arg("x"), py::arg("p"), py::arg("ip"), py::arg("threads"));
}

}  // namespace annx::py_glue
