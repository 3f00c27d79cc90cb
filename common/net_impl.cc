// Compiles Boost.Asio and Boost.Beast once for the whole project (BOOST_*_SEPARATE_COMPILATION
// is defined globally in the top-level CMakeLists.txt), instead of in every translation unit.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
