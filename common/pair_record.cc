#include "common/pair_record.h"

#include <openssl/evp.h>
#include <simdjson.h>

#include <array>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/pair_log_fields.h"

namespace sg {
namespace {

using nlohmann::json;
namespace ondemand = simdjson::ondemand;
namespace pl = pair_log;

static_assert(kPairLogVersion == 1, "the tables in pair_log_fields.h write \"v\": 1");

// Writes JSON text straight into the line (a pair line is encoded once per mirrored request, on
// the gateway's threads): the bytes nlohmann's dump(-1, ' ', false, replace) writes (compact
// separators, "\u00xx" for other control characters, UTF-8 kept), which version 1 lines have
// always had. Hand-written for a measured reason: callgrind counts 16,971 instructions to encode
// the sample pair line this way and 100,300 through an nlohmann DOM (issue 20, 6817992).
class LineWriter {
 public:
  explicit LineWriter(std::string* out) : out_(out) {}

  // Structure: braces, quoted keys, colons and commas, exactly as given.
  LineWriter& Raw(std::string_view text) {
    out_->append(text);
    return *this;
  }
  LineWriter& String(std::string_view text) {
    // The usual case needs no escape: one scan, then the text in one piece.
    size_t i = 0;
    bool non_ascii = false;
    for (; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x20 || c == '"' || c == '\\') break;
      non_ascii |= c >= 0x80;
    }
    if (i == text.size() && !non_ascii) {
      out_->push_back('"');
      out_->append(text);
      out_->push_back('"');
      return *this;
    }
    return Escaped(text);
  }
  template <typename Integer>
  LineWriter& Number(Integer value) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out_->append(digits, static_cast<size_t>(end - digits));
    return *this;
  }
  LineWriter& Bool(bool value) { return Raw(value ? "true" : "false"); }
  LineWriter& Headers(const std::map<std::string, std::string>& headers) {
    out_->push_back('{');
    bool first = true;
    for (const auto& [name, value] : headers) {
      if (!first) out_->push_back(',');
      first = false;
      String(name);
      out_->push_back(':');
      String(value);
    }
    out_->push_back('}');
    return *this;
  }

 private:
  // Text with characters to escape, or not ASCII (validated: invalid UTF-8, a raw target or
  // header, takes nlohmann's own replacement rules).
  LineWriter& Escaped(std::string_view text) {
    if (!IsValidUtf8(text)) {
      out_->append(json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace));
      return *this;
    }
    out_->push_back('"');
    size_t plain = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_->append(text.substr(plain, i - plain));
      plain = i + 1;
      switch (c) {
        case '"':
          out_->append("\\\"");
          break;
        case '\\':
          out_->append("\\\\");
          break;
        case '\b':
          out_->append("\\b");
          break;
        case '\f':
          out_->append("\\f");
          break;
        case '\n':
          out_->append("\\n");
          break;
        case '\r':
          out_->append("\\r");
          break;
        case '\t':
          out_->append("\\t");
          break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
          out_->append(escape, 6);
        }
      }
    }
    out_->append(text.substr(plain));
    out_->push_back('"');
    return *this;
  }

  std::string* out_;
};

// ---- Encoding: the tables in key order, through LineWriter.

template <typename T>
bool IsDefault(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return !value;
  } else if constexpr (std::is_arithmetic_v<T>) {
    return value == T{};
  } else if constexpr (requires { value.has_value(); }) {
    return !value.has_value();
  } else if constexpr (requires { value.empty(); }) {
    return value.empty();
  } else {
    return false;  // an object
  }
}

template <typename T>
const auto& Unwrapped(const T& value) {
  if constexpr (requires { value.has_value(); }) {
    return *value;  // only reached when present (kUnlessDefault)
  } else {
    return value;
  }
}

template <typename S, typename Fields>
void WriteObject(LineWriter& w, const S& s, const Fields& fields, bool shadow);

void WriteValue(LineWriter& w, const std::string& value, pl::Text) {
  w.String(value);
}
template <typename T>
void WriteValue(LineWriter& w, const T& value, pl::Integer) {
  w.Number(Unwrapped(value));
}
void WriteValue(LineWriter& w, bool value, pl::Boolean) {
  w.Bool(value);
}
template <typename T>
void WriteValue(LineWriter& w, const T& value, pl::Real) {
  // nlohmann's number format ("0.0", "1e-07"): the bytes these lines have always had. Cutover
  // decisions only, a few per rollout.
  w.Raw(json(Unwrapped(value)).dump());
}
void WriteValue(LineWriter& w, const std::map<std::string, std::string>& value, pl::Headers) {
  w.Headers(value);
}
void WriteValue(LineWriter& w, const std::map<std::string, uint64_t>& value, pl::Counts) {
  w.Raw("{");
  bool first = true;
  for (const auto& [name, count] : value) {
    if (!first) w.Raw(",");
    first = false;
    w.String(name).Raw(":").Number(count);
  }
  w.Raw("}");
}
void WriteValue(LineWriter& w, const std::optional<std::string>& value, pl::Base64) {
  w.String(Base64Encode(*value));
}
void WriteValue(LineWriter& w, bool value, pl::Flag flag) {
  w.String(value ? flag.when_true : flag.when_false);
}
template <typename S, typename Fields>
void WriteValue(LineWriter& w, const S& value, pl::Object<Fields> object) {
  WriteObject(w, value, *object.fields, object.shadow);
}

// `separator`: '{' until the object's first member is written, then ','.
template <typename S, typename M, typename K, size_t N>
void WriteMember(LineWriter& w, const S& s, const pl::Field<S, M, K, N>& field, bool shadow,
                 char& separator) {
  const M& value = s.*field.member;
  if (field.write == pl::Write::kUnlessDefault && IsDefault(value)) return;
  if (field.write == pl::Write::kShadowOnly && !shadow) return;
  if constexpr (std::is_same_v<K, pl::TextOrBase64>) {
    if (IsValidUtf8(value)) {
      w.Raw(field.key.text(separator)).String(value);
    } else {
      w.Raw(separator == '{' ? "{\"" : ",\"").Raw(field.key.name()).Raw("_b64\":");
      w.String(Base64Encode(value));
    }
  } else {
    w.Raw(field.key.text(separator));
    WriteValue(w, value, field.kind);
  }
  separator = ',';
}

template <typename S, size_t N, size_t V>
void WriteMember(LineWriter& w, const S&, const pl::Constant<N, V>& constant, bool,
                 char& separator) {
  w.Raw(constant.key.text(separator));
  separator = ',';
}

template <typename S, typename Fields>
void WriteObject(LineWriter& w, const S& s, const Fields& fields, bool shadow) {
  char separator = '{';
  std::apply([&](const auto&... field) { (WriteMember(w, s, field, shadow, separator), ...); },
             fields);
  w.Raw(separator == '{' ? "{}" : "}");
}

template <typename S, typename Fields>
std::string EncodeLine(const S& s, const Fields& fields, size_t size_hint) {
  std::string line;
  line.reserve(size_hint);
  LineWriter w(&line);
  WriteObject(w, s, fields, false);
  return line;
}

// ---- Decoding: one pass over the line with simdjson's On Demand API, the tables dispatching
// each member to its kind's reader.

// Unknown values and mistyped ones are still read through, so that a line with broken JSON
// anywhere is "invalid JSON"; deeper than this it is too (the gateway writes 3 levels).
constexpr int kMaxDepth = 64;

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

class LineDecoder {
 public:
  std::optional<PairLogEntry> Decode(std::string_view line, std::string* error);

 private:
  // A line's problems: broken JSON wins over everything; otherwise the first problem met (in the
  // line's order; a missing field when its object ends).
  void Invalid() { invalid_ = true; }
  template <typename... Parts>
  [[gnu::noinline, gnu::cold]] void Fail(const Parts&... parts) {
    if (failed_) return;
    failed_ = true;
    (problem_.append(parts), ...);
  }
  // "x", or "parent.x" inside a nested object.
  [[gnu::noinline, gnu::cold]] void FailAt(std::string_view what, std::string_view parent,
                                           std::string_view key) {
    if (parent.empty()) return Fail(what, key);
    Fail(what, parent, ".", key);
  }

  // Pads the line for simdjson (SIMDJSON_PADDING readable bytes after it) in a buffer reused for
  // every line of this thread, and starts the document.
  simdjson::error_code Start(std::string_view line, ondemand::document& doc);

  template <typename S, typename Fields, typename Extra>
  void ReadObject(ondemand::object object, S& out, const Fields& fields, std::string_view parent,
                  Extra&& extra);
  template <size_t I, typename S, typename Fields>
  bool ReadMember(const Fields& fields, std::string_view key, ondemand::value value, S& out,
                  std::string_view parent, uint32_t& seen);
  template <size_t I, typename Fields>
  void CheckPresent(const Fields& fields, uint32_t seen, std::string_view parent);

  // Each reads `value` into `out` and returns whether the field is there (false for null: an
  // absent field). Out of line: inlined into the table's dispatch, the decoder's code had 6x the
  // hand-written decoder's L1 instruction-cache misses in callgrind's model (4x out of line, most
  // of the rest simdjson's stage 1) for 2% fewer instructions.
  [[gnu::noinline]] bool Read(ondemand::value value, std::string& out, pl::Text,
                              std::string_view parent, std::string_view key);
  template <typename T>
  [[gnu::noinline]] bool Read(ondemand::value value, T& out, pl::Integer, std::string_view parent,
                              std::string_view key);
  [[gnu::noinline]] bool Read(ondemand::value value, bool& out, pl::Boolean,
                              std::string_view parent, std::string_view key);
  template <typename T>
  [[gnu::noinline]] bool Read(ondemand::value value, T& out, pl::Real, std::string_view parent,
                              std::string_view key);
  [[gnu::noinline]] bool Read(ondemand::value value, std::map<std::string, std::string>& out,
                              pl::Headers, std::string_view parent, std::string_view key);
  [[gnu::noinline]] bool Read(ondemand::value value, std::map<std::string, uint64_t>& out,
                              pl::Counts, std::string_view parent, std::string_view key);
  [[gnu::noinline]] bool Read(ondemand::value value, std::optional<std::string>& out, pl::Base64,
                              std::string_view parent, std::string_view key);
  [[gnu::noinline]] bool Read(ondemand::value value, bool& out, pl::Flag flag,
                              std::string_view parent, std::string_view key);
  template <typename S, typename Fields>
  [[gnu::noinline]] bool Read(ondemand::value value, S& out, pl::Object<Fields> object,
                              std::string_view parent, std::string_view key);
  [[gnu::noinline]] bool ReadBase64(ondemand::value value, std::string& out,
                                    std::string_view parent, std::string_view key);
  // An object of names to values that `get` reads (headers: strings; counts: integers >= 0).
  template <typename Item, typename Map, typename Get>
  [[gnu::noinline]] bool ReadMap(ondemand::value value, Map& out, std::string_view parent,
                                 std::string_view key, Get&& get);

  // After a reader's getter failed with `e`: null is an absent field (false); another JSON value
  // is mistyped (read through, then "bad type"); anything else is broken JSON.
  [[gnu::noinline, gnu::cold]] bool Mistyped(simdjson::error_code e, ondemand::value value,
                                             std::string_view parent, std::string_view key);
  // Reads a value through without keeping it, checking that it is JSON.
  // `depth`: the value's nesting below the line (1: a member of the line's object).
  [[gnu::noinline, gnu::cold]] void Skip(ondemand::value value, int depth);

  // "v" and "type", read in the first pass whatever the line's type.
  [[gnu::noinline]] bool ReadHeader(std::string_view key, ondemand::value value);
  // The second pass of a counters or cutover line.
  template <typename S, typename Fields>
  [[gnu::noinline, gnu::cold]] std::optional<PairLogEntry> DecodeAgain(ondemand::document& doc,
                                                                       const Fields& fields,
                                                                       std::string* error);
  [[gnu::noinline, gnu::cold]] std::optional<PairLogEntry> Refuse(const std::string& why,
                                                                  std::string* error);

  ondemand::parser parser_;
  std::unique_ptr<char[]> buffer_;
  size_t buffer_size_ = 0;
  int depth_ = 0;  // of the values being read: 1 for the line's members
  bool invalid_ = false;
  bool failed_ = false;
  std::string problem_;
  std::optional<int64_t> version_;
  std::optional<std::string> type_;
  std::string header_problem_[2];  // of "v", of "type"
};

simdjson::error_code LineDecoder::Start(std::string_view line, ondemand::document& doc) {
  invalid_ = failed_ = false;
  depth_ = 0;
  problem_.clear();
  version_.reset();
  type_.reset();
  header_problem_[0].clear();
  header_problem_[1].clear();
  const size_t needed = line.size() + simdjson::SIMDJSON_PADDING;
  if (buffer_size_ < needed) {
    buffer_size_ = std::max(needed, 2 * buffer_size_);
    buffer_ = std::make_unique<char[]>(buffer_size_);
  }
  std::memcpy(buffer_.get(), line.data(), line.size());
  std::memset(buffer_.get() + line.size(), 0, simdjson::SIMDJSON_PADDING);
  // The parser's own buffers grow by doubling too, not to each longer line's size.
  if (parser_.capacity() < line.size()) {
    if (auto e = parser_.allocate(std::max(line.size(), 2 * parser_.capacity()))) return e;
  }
  return parser_.iterate(buffer_.get(), line.size(), buffer_size_).get(doc);
}

bool LineDecoder::Mistyped(simdjson::error_code e, ondemand::value value, std::string_view parent,
                           std::string_view key) {
  if (e != simdjson::INCORRECT_TYPE) {
    Invalid();
    return true;
  }
  bool null = false;
  if (!value.is_null().get(null) && null) return false;
  Skip(value, depth_);
  FailAt("bad type for field ", parent, key);
  return true;
}

void LineDecoder::Skip(ondemand::value value, int depth) {
  ondemand::json_type type;
  if (value.type().get(type)) return Invalid();
  switch (type) {
    case ondemand::json_type::object: {
      ondemand::object object;
      if (depth > kMaxDepth || value.get_object().get(object)) return Invalid();
      for (auto member : object) {
        ondemand::field field;
        std::string_view key;
        if (std::move(member).get(field) || field.unescaped_key().get(key)) return Invalid();
        Skip(field.value(), depth + 1);
        if (invalid_) return;
      }
      return;
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (depth > kMaxDepth || value.get_array().get(array)) return Invalid();
      for (auto element : array) {
        ondemand::value item;
        if (std::move(element).get(item)) return Invalid();
        Skip(item, depth + 1);
        if (invalid_) return;
      }
      return;
    }
    case ondemand::json_type::string: {
      std::string_view text;
      if (value.get_string().get(text)) Invalid();
      return;
    }
    case ondemand::json_type::number: {
      double number;  // any number that is a double (integers past 64 bits too), not 1e999
      if (value.get_double().get(number)) Invalid();
      return;
    }
    case ondemand::json_type::boolean: {
      bool b;
      if (value.get_bool().get(b)) Invalid();
      return;
    }
    case ondemand::json_type::null: {
      bool null = false;
      if (value.is_null().get(null) || !null) Invalid();
      return;
    }
  }
  Invalid();
}

bool LineDecoder::Read(ondemand::value value, std::string& out, pl::Text, std::string_view parent,
                       std::string_view key) {
  std::string_view text;
  if (auto e = value.get_string().get(text)) return Mistyped(e, value, parent, key);
  out.assign(text);
  return true;
}

template <typename T>
bool LineDecoder::Read(ondemand::value value, T& out, pl::Integer, std::string_view parent,
                       std::string_view key) {
  if constexpr (IsOptional<T>::value) {
    typename T::value_type v{};
    const bool present = Read(value, v, pl::Integer{}, parent, key);
    if (present) out = v;
    return present;
  } else {
    using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    Wide v;
    simdjson::error_code e;
    if constexpr (std::is_signed_v<T>) {
      e = value.get_int64().get(v);
    } else {
      e = value.get_uint64().get(v);
    }
    if (e) return Mistyped(e, value, parent, key);
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      FailAt("bad type for field ", parent, key);
      return true;
    }
    out = static_cast<T>(v);
    return true;
  }
}

bool LineDecoder::Read(ondemand::value value, bool& out, pl::Boolean, std::string_view parent,
                       std::string_view key) {
  if (auto e = value.get_bool().get(out)) return Mistyped(e, value, parent, key);
  return true;
}

template <typename T>
bool LineDecoder::Read(ondemand::value value, T& out, pl::Real, std::string_view parent,
                       std::string_view key) {
  double v;
  if (auto e = value.get_double().get(v)) return Mistyped(e, value, parent, key);
  out = v;
  return true;
}

template <typename Item, typename Map, typename Get>
bool LineDecoder::ReadMap(ondemand::value value, Map& out, std::string_view parent,
                          std::string_view key, Get&& get) {
  ondemand::object object;
  if (auto e = value.get_object().get(object)) return Mistyped(e, value, parent, key);
  for (auto member : object) {
    ondemand::field field;
    std::string_view name;
    Item item;
    if (std::move(member).get(field) || field.unescaped_key().get(name)) {
      Invalid();
      return true;
    }
    if (auto e = get(field.value()).get(item)) {
      if (e != simdjson::INCORRECT_TYPE) {
        Invalid();
        return true;
      }
      Skip(field.value(), depth_ + 1);
      FailAt("bad type for field ", parent, key);
      continue;
    }
    const size_t size = out.size();
    out.emplace_hint(out.end(), name, item);  // writers put the names in order
    if (out.size() == size) {
      if (parent.empty()) {
        Fail("duplicate field ", key, ".", name);
      } else {
        Fail("duplicate field ", parent, ".", key, ".", name);
      }
    }
  }
  return true;
}

bool LineDecoder::Read(ondemand::value value, std::map<std::string, std::string>& out, pl::Headers,
                       std::string_view parent, std::string_view key) {
  return ReadMap<std::string_view>(value, out, parent, key,
                                   [](ondemand::value item) { return item.get_string(); });
}

bool LineDecoder::Read(ondemand::value value, std::map<std::string, uint64_t>& out, pl::Counts,
                       std::string_view parent, std::string_view key) {
  return ReadMap<uint64_t>(value, out, parent, key,
                           [](ondemand::value item) { return item.get_uint64(); });
}

bool LineDecoder::ReadBase64(ondemand::value value, std::string& out, std::string_view parent,
                             std::string_view key) {
  std::string_view text;
  if (auto e = value.get_string().get(text)) return Mistyped(e, value, parent, key);
  auto bytes = Base64Decode(text);
  if (!bytes) {
    FailAt("invalid base64 in ", parent, key);
    return true;
  }
  out = std::move(*bytes);
  return true;
}

bool LineDecoder::Read(ondemand::value value, std::optional<std::string>& out, pl::Base64,
                       std::string_view parent, std::string_view key) {
  std::string bytes;
  if (!ReadBase64(value, bytes, parent, key)) return false;
  out = std::move(bytes);
  return true;
}

bool LineDecoder::Read(ondemand::value value, bool& out, pl::Flag flag, std::string_view parent,
                       std::string_view key) {
  std::string_view text;
  if (auto e = value.get_string().get(text)) return Mistyped(e, value, parent, key);
  if (text == flag.when_true) {
    out = true;
  } else if (text == flag.when_false) {
    out = false;
  } else {
    FailAt("bad value for field ", parent, key);
  }
  return true;
}

template <typename S, typename Fields>
bool LineDecoder::Read(ondemand::value value, S& out, pl::Object<Fields> object,
                       std::string_view parent, std::string_view key) {
  ondemand::object members;
  if (auto e = value.get_object().get(members)) {
    if (e != simdjson::INCORRECT_TYPE) {
      Invalid();
      return true;
    }
    Skip(value, depth_);
    FailAt("missing object ", parent, key);
    return true;
  }
  // One level of nesting (request, primary, shadow): the key is the whole path.
  ReadObject(members, out, *object.fields, key,
             [](std::string_view, ondemand::value) { return false; });
  return true;
}

template <size_t I, typename S, typename Fields>
bool LineDecoder::ReadMember(const Fields& fields, std::string_view key, ondemand::value value,
                             S& out, std::string_view parent, uint32_t& seen) {
  const auto& field = std::get<I>(fields);
  using Descriptor = std::decay_t<decltype(field)>;
  if constexpr (!requires { typename Descriptor::Kind; }) {
    return false;  // a Constant ("type", "v"): the caller's
  } else {
    bool base64 = false;  // TextOrBase64 under its "_b64" key
    if (key != field.key.name()) {
      if constexpr (!std::is_same_v<typename Descriptor::Kind, pl::TextOrBase64>) {
        return false;
      } else {
        const std::string_view name = field.key.name();
        if (key.size() != name.size() + 4 || !key.starts_with(name) || !key.ends_with("_b64")) {
          return false;
        }
        base64 = true;
      }
    }
    constexpr uint32_t kBit = uint32_t{1} << I;
    if (seen & kBit) {  // "body" and "body_b64" are one field
      Skip(value, depth_);
      FailAt("duplicate field ", parent, key);
      return true;
    }
    bool present;
    if constexpr (std::is_same_v<typename Descriptor::Kind, pl::TextOrBase64>) {
      present = base64 ? ReadBase64(value, out.*field.member, parent, key)
                       : Read(value, out.*field.member, pl::Text{}, parent, key);
    } else {
      present = Read(value, out.*field.member, field.kind, parent, key);
    }
    if (present) seen |= kBit;
    return true;
  }
}

template <size_t I, typename Fields>
void LineDecoder::CheckPresent(const Fields& fields, uint32_t seen, std::string_view parent) {
  const auto& field = std::get<I>(fields);
  using Descriptor = std::decay_t<decltype(field)>;
  if constexpr (requires { typename Descriptor::Kind; }) {
    if (field.need == pl::Need::kRequired && !(seen & (uint32_t{1} << I))) {
      constexpr bool kObject = requires {
        field.kind.fields;
      };
      FailAt(kObject ? "missing object " : "missing field ", parent, field.key.name());
    }
  }
}

template <typename S, typename Fields, typename Extra>
void LineDecoder::ReadObject(ondemand::object object, S& out, const Fields& fields,
                             std::string_view parent, Extra&& extra) {
  constexpr size_t kCount = std::tuple_size_v<Fields>;
  static_assert(kCount <= 32, "one bit per field in `seen`");
  uint32_t seen = 0;
  ++depth_;
  for (auto member : object) {
    ondemand::field field;
    std::string_view key;
    if (std::move(member).get(field) || field.unescaped_key().get(key)) return Invalid();
    ondemand::value value = field.value();
    const bool known = [&]<size_t... I>(std::index_sequence<I...>) {
      return (ReadMember<I>(fields, key, value, out, parent, seen) || ...);
    }
    (std::make_index_sequence<kCount>{});
    if (!known && !extra(key, value)) Skip(value, depth_);  // readers ignore unknown fields
    if (invalid_) return;
  }
  --depth_;
  [&]<size_t... I>(std::index_sequence<I...>) {
    (CheckPresent<I>(fields, seen, parent), ...);
  }
  (std::make_index_sequence<kCount>{});
}

bool LineDecoder::ReadHeader(std::string_view key, ondemand::value value) {
  const int which = key == "v" ? 0 : 1;
  if ((which == 0 && version_) || (which == 1 && type_)) {
    Skip(value, depth_);
    if (header_problem_[which].empty())
      header_problem_[which] = "duplicate field " + std::string(key);
    return true;
  }
  simdjson::error_code e;
  if (which == 0) {
    int64_t v;
    e = value.get_int64().get(v);
    if (!e) version_ = v;
  } else {
    std::string_view t;
    e = value.get_string().get(t);
    if (!e) type_ = std::string(t);
  }
  if (e == simdjson::INCORRECT_TYPE) {
    bool null = false;
    if (!value.is_null().get(null) && null) return true;  // absent
    Skip(value, depth_);
    if (header_problem_[which].empty()) {
      header_problem_[which] = "bad type for field " + std::string(key);
    }
  } else if (e) {
    Invalid();
  }
  return true;
}

template <typename S, typename Fields>
std::optional<PairLogEntry> LineDecoder::DecodeAgain(ondemand::document& doc, const Fields& fields,
                                                     std::string* error) {
  S out;
  failed_ = false;
  problem_.clear();
  doc.rewind();
  ondemand::object object;
  if (doc.get_object().get(object)) Invalid();
  if (!invalid_) {
    ReadObject(object, out, fields, "", [](std::string_view key, ondemand::value) {
      return key == "v" || key == "type";  // read in the first pass
    });
  }
  if (invalid_) return Refuse("invalid JSON", error);
  if (failed_) return Refuse(problem_, error);
  return PairLogEntry(std::move(out));
}

std::optional<PairLogEntry> LineDecoder::Refuse(const std::string& why, std::string* error) {
  if (error) *error = why;
  return std::nullopt;
}

std::optional<PairLogEntry> LineDecoder::Decode(std::string_view line, std::string* error) {
  // A byte order mark before the object is ignored (RFC 8259 section 8.1 allows it).
  if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
  ondemand::document doc;
  ondemand::object object;
  if (Start(line, doc) || doc.get_object().get(object)) return Refuse("invalid JSON", error);

  // One pass reads "v" and "type" and, as most lines are pairs, the rest as a pair.
  PairRecord pair;
  ReadObject(object, pair, pl::kPairFields, "",
             [this](std::string_view key, ondemand::value value) {
               return (key == "v" || key == "type") && ReadHeader(key, value);
             });
  if (!invalid_ && doc.current_location().error() != simdjson::OUT_OF_BOUNDS) Invalid();
  if (invalid_) return Refuse("invalid JSON", error);
  if (!header_problem_[0].empty()) return Refuse(header_problem_[0], error);
  if (!version_) return Refuse("missing field v", error);
  if (*version_ != kPairLogVersion) {
    return Refuse("unsupported version " + std::to_string(*version_), error);
  }
  if (!header_problem_[1].empty()) return Refuse(header_problem_[1], error);
  if (!type_) return Refuse("missing field type", error);
  if (*type_ == "pair") {
    if (failed_) return Refuse(problem_, error);
    return PairLogEntry(std::move(pair));
  }
  // A counters or cutover line (a few per minute): read again with its own table.
  if (*type_ == "counters") return DecodeAgain<MirrorCounters>(doc, pl::kCountersFields, error);
  if (*type_ == "cutover") return DecodeAgain<CutoverDecision>(doc, pl::kCutoverFields, error);
  return Refuse("unknown record type \"" + *type_ + "\"", error);
}

}  // namespace

std::string EncodePairLogLine(const PairRecord& record) {
  return EncodeLine(record, pl::kPairFields,
                    512 + record.request.target.size() + record.primary.body.size() +
                        record.shadow.body.size() +
                        (record.request.body ? record.request.body->size() * 4 / 3 : 0));
}

std::string EncodePairLogLine(const MirrorCounters& counters) {
  return EncodeLine(counters, pl::kCountersFields, 512);
}

std::string EncodePairLogLine(const CutoverDecision& decision) {
  return EncodeLine(decision, pl::kCutoverFields, 512 + decision.reason.size());
}

std::optional<PairLogEntry> DecodePairLogLine(std::string_view line, std::string* error) {
  thread_local LineDecoder decoder;
  return decoder.Decode(line, error);
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

namespace {

// Values of the standard base64 alphabet; -1 for every other byte.
constexpr std::array<int, 256> kBase64Values = [] {
  std::array<int, 256> values{};
  values.fill(-1);
  constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) values[static_cast<unsigned char>(kAlphabet[i])] = i;
  return values;
}();

// RFC 4648 base64 as the encoders write it (alphabet characters, then at most two '=');
// nullopt for anything else. Table-driven: faster than EVP_DecodeBlock, same bytes.
std::optional<std::string> DecodeCanonicalBase64(std::string_view text) {
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  const auto* data_end = in + (text.size() - padding);
  std::string out(text.size() / 4 * 3 - padding, '\0');
  char* o = out.data();
  for (; in + 4 <= data_end; in += 4) {
    const int a = kBase64Values[in[0]], b = kBase64Values[in[1]], c = kBase64Values[in[2]],
              d = kBase64Values[in[3]];
    if ((a | b | c | d) < 0) return std::nullopt;
    const auto bits = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    o[0] = static_cast<char>(bits >> 16);
    o[1] = static_cast<char>(bits >> 8);
    o[2] = static_cast<char>(bits);
    o += 3;
  }
  if (padding > 0) {  // the last group holds 4 - padding characters
    const int a = kBase64Values[in[0]], b = kBase64Values[in[1]],
              c = padding == 1 ? kBase64Values[in[2]] : 0;
    if ((a | b | c) < 0) return std::nullopt;
    const auto bits = static_cast<uint32_t>(a << 18 | b << 12 | c << 6);
    o[0] = static_cast<char>(bits >> 16);
    if (padding == 1) o[1] = static_cast<char>(bits >> 8);
  }
  return out;
}

}  // namespace

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  return DecodeCanonicalBase64(text);
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong encodings, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string Sha256Hex(std::string_view bytes) {
  // Most mirrored GETs have no body: its digest is a constant.
  if (bytes.empty()) return "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  // The algorithm fetched once and one context per thread: EVP_Digest fetches and allocates on
  // every call, which costs more than hashing a small body (this runs once per mirrored request).
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                               &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!sha256 || !context || !EVP_DigestInit_ex2(context.get(), sha256, nullptr) ||
      !EVP_DigestUpdate(context.get(), bytes.data(), bytes.size()) ||
      !EVP_DigestFinal_ex(context.get(), digest, &length)) {
    EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

}  // namespace sg
