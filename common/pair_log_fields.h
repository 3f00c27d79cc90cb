// The pair log's fields (docs/pair-log.md, version 1), each declared once: its JSON key, the
// member it holds, its kind, whether a reader needs it and when a writer leaves it out. The
// encoder (EncodePairLogLine) and the decoder (DecodePairLogLine) in pair_record.cc are driven by
// these tables at compile time; PairRecordDocTest checks that docs/pair-log.md names every key.
//
// Adding a field: a member in pair_record.h, one line here (in key order), its doc line.
//
// Internal to sg_common (and its tests).
#pragma once

#include <cstddef>
#include <string_view>
#include <tuple>

#include "common/pair_record.h"

namespace sg::pair_log {

// The kinds of value a field holds; pair_record.cc says how each is written and read.
struct Text {};          // std::string: a JSON string
struct Integer {};       // int, int64_t or uint64_t (or an optional one): an integer literal in
                         // the member's range (no fraction, no exponent)
struct Boolean {};       // bool
struct Real {};          // double or std::optional<double>: any JSON number
struct Headers {};       // std::map<std::string, std::string>: an object of strings
struct Counts {};        // std::map<std::string, uint64_t>: an object of integers >= 0
struct TextOrBase64 {};  // std::string: "<key>" (text) when valid UTF-8, else "<key>_b64"
struct Base64 {};        // std::optional<std::string>: base64 text (RFC 4648 section 4)
struct Flag {            // bool: the string `when_true`, or `when_false` (or absent) for false
  std::string_view when_true, when_false;
};
template <typename Fields>
struct Object {  // a nested struct, written and read through its own table
  const Fields* fields;
  bool shadow = false;  // the shadow's response (send_offset_us is written for it only)
};
// clang 14 (the fuzz build) deduces no aggregate's template arguments without these.
template <typename Fields>
Object(const Fields*) -> Object<Fields>;
template <typename Fields>
Object(const Fields*, bool) -> Object<Fields>;

enum class Need { kOptional, kRequired };  // a reader's view: a required field must be there
enum class Write {
  kAlways,         // the encoder always writes it
  kUnlessDefault,  // left out when empty, false or nullopt
  kShadowOnly,     // written in the shadow's object only
};

// A member's key and the text the encoder writes before its value, `,"key":` (`{"key":` for an
// object's first member: one append either way), built at compile time. A Constant's value is
// part of that text (V: the value literal's size).
template <size_t N, size_t V = 1>
struct Key {
  static constexpr size_t kSize = N + V + 2;  // , " key " : value
  char comma[kSize] = {};
  char open[kSize] = {};
  constexpr Key(const char (&key)[N], const char (&value)[V] = "") {  // NOLINT: implicit
    size_t at = 0;
    comma[at++] = ',';
    comma[at++] = '"';
    for (size_t i = 0; i + 1 < N; ++i) comma[at++] = key[i];
    comma[at++] = '"';
    comma[at++] = ':';
    for (size_t i = 0; i + 1 < V; ++i) comma[at++] = value[i];
    for (size_t i = 0; i < kSize; ++i) open[i] = comma[i];
    open[0] = '{';
  }
  constexpr std::string_view name() const { return {comma + 2, N - 1}; }
  // `separator`: '{' for an object's first member, ',' for the others.
  constexpr std::string_view text(char separator) const {
    return {separator == '{' ? open : comma, kSize};
  }
};

template <typename S, typename M, typename K, size_t N>
struct Field {
  using Struct = S;
  using Member = M;
  using Kind = K;
  Key<N> key;
  M S::*member;
  K kind;
  Need need;
  Write write;
};

// A member of every line written as a constant ("type", "v"); readers check them first.
template <size_t N, size_t V>
struct Constant {
  Key<N, V> key;  // with the value, as JSON text
};

template <typename S, typename M, typename K, size_t N>
constexpr Field<S, M, K, N> F(const char (&key)[N], M S::*member, K kind,
                              Need need = Need::kOptional, Write write = Write::kAlways) {
  return {key, member, kind, need, write};
}
template <size_t N, size_t V>
constexpr Constant<N, V> C(const char (&key)[N], const char (&json)[V]) {
  return {Key<N, V>(key, json)};
}

constexpr auto R = Need::kRequired;
constexpr auto O = Need::kOptional;
constexpr auto kUnlessDefault = Write::kUnlessDefault;

// Every table lists its members in key order: the encoder writes them so (nlohmann's std::map
// order, the bytes every version 1 writer has written), and the order is checked below.
inline constexpr auto kRequestFields = std::tuple{
    F("body_b64", &CapturedRequest::body, Base64{}, O, kUnlessDefault),
    F("body_truncated", &CapturedRequest::body_truncated, Boolean{}),
    F("headers", &CapturedRequest::headers, Headers{}),
    F("method", &CapturedRequest::method, Text{}, R),
    F("sha256", &CapturedRequest::sha256, Text{}),
    F("size", &CapturedRequest::size, Integer{}),
    F("target", &CapturedRequest::target, Text{}, R),
};

inline constexpr auto kResponseFields = std::tuple{
    F("body", &CapturedResponse::body, TextOrBase64{}),  // or "body_b64"
    F("body_truncated", &CapturedResponse::body_truncated, Boolean{}),
    F("error", &CapturedResponse::error, Text{}, O, kUnlessDefault),
    F("headers", &CapturedResponse::headers, Headers{}),
    F("latency_us", &CapturedResponse::latency_us, Integer{}, R),
    F("outcome", &CapturedResponse::outcome, Text{}, R),
    F("send_offset_us", &CapturedResponse::send_offset_us, Integer{}, O, Write::kShadowOnly),
    F("status", &CapturedResponse::status, Integer{}, R),
};

inline constexpr auto kPairFields = std::tuple{
    F("id", &PairRecord::id, Text{}, R),
    F("mirror", &PairRecord::mirror, Text{}),
    F("primary", &PairRecord::primary, Object{&kResponseFields}, R),
    F("request", &PairRecord::request, Object{&kRequestFields}, R),
    F("route", &PairRecord::route, Text{}, R),
    F("served_by", &PairRecord::served_by_candidate, Flag{"candidate", "primary"}, O,
      kUnlessDefault),
    F("shadow", &PairRecord::shadow, Object{&kResponseFields, /*shadow=*/true}, R),
    F("ts_us", &PairRecord::ts_us, Integer{}, R),
    C("type", "\"pair\""),
    C("v", "1"),
};

inline constexpr auto kCountersFields = std::tuple{
    F("instance", &MirrorCounters::instance, Text{}),
    F("mirror", &MirrorCounters::mirror, Text{}, R),
    F("mirrored", &MirrorCounters::mirrored, Counts{}),
    F("not_captured", &MirrorCounters::not_captured, Counts{}, O, kUnlessDefault),
    F("not_mirrored", &MirrorCounters::not_mirrored, Counts{}),
    F("requests", &MirrorCounters::requests, Integer{}),
    F("route", &MirrorCounters::route, Text{}, R),
    F("sink_dropped", &MirrorCounters::sink_dropped, Integer{}),
    F("ts_us", &MirrorCounters::ts_us, Integer{}, R),
    C("type", "\"counters\""),
    C("v", "1"),
};

inline constexpr auto kCutoverFields = std::tuple{
    F("bound", &CutoverDecision::bound, Real{}, O, kUnlessDefault),
    F("bound_kind", &CutoverDecision::bound_kind, Text{}, O, kUnlessDefault),
    F("decision", &CutoverDecision::decision, Text{}, R),
    F("gate", &CutoverDecision::gate, Text{}, O, kUnlessDefault),
    F("instance", &CutoverDecision::instance, Text{}),
    F("judged", &CutoverDecision::judged, Integer{}, O, kUnlessDefault),
    F("metric", &CutoverDecision::metric, Text{}, O, kUnlessDefault),
    F("mirror", &CutoverDecision::mirror, Text{}),
    F("reason", &CutoverDecision::reason, Text{}),
    F("route", &CutoverDecision::route, Text{}, R),
    F("share", &CutoverDecision::share, Real{}, R),
    F("state", &CutoverDecision::state, Text{}, R),
    F("step", &CutoverDecision::step, Integer{}, R),
    F("ts_us", &CutoverDecision::ts_us, Integer{}, R),
    C("type", "\"cutover\""),
    C("v", "1"),
    F("value", &CutoverDecision::value, Real{}, O, kUnlessDefault),
};

template <typename Fields>
constexpr bool InKeyOrder(const Fields& fields) {
  return std::apply(
      [](const auto&... field) {
        std::string_view previous;
        bool ordered = true;
        ((ordered = ordered && previous < field.key.name(), previous = field.key.name()), ...);
        return ordered;
      },
      fields);
}
static_assert(InKeyOrder(kRequestFields) && InKeyOrder(kResponseFields) &&
              InKeyOrder(kPairFields) && InKeyOrder(kCountersFields) && InKeyOrder(kCutoverFields));

}  // namespace sg::pair_log
