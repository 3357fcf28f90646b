// annx's exception hierarchy. Every user-reachable failure throws one of these (never
// abort); the Python bindings map each type to a Python exception class:
//   InvalidArgument -> annx.InvalidArgumentError (a ValueError)
//   NotTrained      -> annx.NotTrainedError
//   Unsupported     -> annx.UnsupportedError (a NotImplementedError)
//   FormatError     -> annx.FormatError
//   IoError         -> OSError
//   Interrupted     -> KeyboardInterrupt
//   Cancelled       -> annx.CancelledError (a progress callback returned False)
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace annx {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class InvalidArgument : public Error {
 public:
  using Error::Error;
};
class NotTrained : public Error {
 public:
  using Error::Error;
};
class Unsupported : public Error {
 public:
  using Error::Error;
};
class FormatError : public Error {
 public:
  using Error::Error;
};
class IoError : public Error {
 public:
  using Error::Error;
};
class Interrupted : public Error {
 public:
  using Error::Error;
};
/// A progress hook asked to stop (not an Interrupted: that one means Ctrl-C).
class Cancelled : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace annx

/// Throws `Type` with the streamed message when `cond` is false.
#define ANNX_CHECK(Type, cond, ...)                               \
  do {                                                            \
    if (!(cond)) throw Type(::annx::detail::concat(__VA_ARGS__)); \
  } while (0)
