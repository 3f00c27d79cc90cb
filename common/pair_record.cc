#include "common/pair_record.h"

#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <limits>
#include <memory>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/pair_line_decoder.h"

namespace sg {
namespace {

using nlohmann::json;

json HeadersJson(const std::map<std::string, std::string>& headers) {
  json out = json::object();
  for (const auto& [k, v] : headers) out[k] = v;
  return out;
}

void PutBody(json& out, const std::string& body) {
  if (IsValidUtf8(body)) {
    out["body"] = body;
  } else {
    out["body_b64"] = Base64Encode(body);
  }
}

json ResponseJson(const CapturedResponse& r, bool shadow) {
  json out = {{"status", r.status}, {"latency_us", r.latency_us}, {"outcome", r.outcome}};
  if (shadow) out["send_offset_us"] = r.send_offset_us;
  out["headers"] = HeadersJson(r.headers);
  PutBody(out, r.body);
  out["body_truncated"] = r.body_truncated;
  if (!r.error.empty()) out["error"] = r.error;
  return out;
}

template <typename T>
constexpr bool IsInteger() {
  return std::is_integral_v<T> && !std::is_same_v<T, bool>;
}

// False for a float outside T's range (every other value is left to nlohmann's conversion).
template <typename T>
bool FitsIn(const json& value) {
  if (!value.is_number_float()) return true;
  const double v = value.get<double>();
  return v >= static_cast<double>(std::numeric_limits<T>::min()) &&
         v < static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
}

// Field access that names the missing or mistyped field in its error.
class Reader {
 public:
  explicit Reader(std::string* error) : error_(error) {}
  bool ok() const { return ok_; }

  template <typename T>
  T Get(const json& object, const char* key, const std::string& path, bool required = true) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
      if (required) Fail("missing field " + path + key);
      return T{};
    }
    // A float outside an integer field's type has no value of it (nlohmann's cast would be
    // undefined: ts_us 1e81, found by fuzz/pair_log_fuzzer with UBSan); so for a map's values.
    bool fits = true;
    if constexpr (IsInteger<T>()) {
      fits = FitsIn<T>(*it);
    } else if constexpr (std::is_same_v<T, std::map<std::string, uint64_t>>) {
      if (it->is_object()) {
        for (const auto& element : *it) fits = fits && FitsIn<uint64_t>(element);
      }
    }
    if (!fits) {
      Fail("bad type for field " + path + key);
      return T{};
    }
    try {
      return it->get<T>();
    } catch (const json::exception&) {
      Fail("bad type for field " + path + key);
      return T{};
    }
  }

  const json& Object(const json& object, const char* key, const std::string& path) {
    static const json kEmpty = json::object();
    auto it = object.find(key);
    if (it == object.end() || !it->is_object()) {
      Fail("missing object " + path + key);
      return kEmpty;
    }
    return *it;
  }

  std::map<std::string, std::string> Headers(const json& object, const std::string& path) {
    std::map<std::string, std::string> out;
    auto it = object.find("headers");
    if (it == object.end()) return out;
    if (!it->is_object()) {
      Fail("bad type for field " + path + "headers");
      return out;
    }
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
    return out;
  }

  std::optional<std::string> Body(const json& object, const std::string& path) {
    if (auto it = object.find("body"); it != object.end() && it->is_string()) {
      return it->get<std::string>();
    }
    if (auto it = object.find("body_b64"); it != object.end() && it->is_string()) {
      auto decoded = Base64Decode(it->get<std::string>());
      if (!decoded) Fail("invalid base64 in " + path + "body_b64");
      return decoded;
    }
    return std::nullopt;
  }

  CapturedResponse Response(const json& object, const std::string& path) {
    CapturedResponse r;
    r.status = Get<int>(object, "status", path);
    r.latency_us = Get<int64_t>(object, "latency_us", path);
    r.send_offset_us = Get<int64_t>(object, "send_offset_us", path, false);
    r.outcome = Get<std::string>(object, "outcome", path);
    r.headers = Headers(object, path);
    r.body = Body(object, path).value_or("");
    r.body_truncated = Get<bool>(object, "body_truncated", path, false);
    r.error = Get<std::string>(object, "error", path, false);
    return r;
  }

  void Fail(const std::string& why) {
    if (ok_ && error_) *error_ = why;
    ok_ = false;
  }

 private:
  std::string* error_;
  bool ok_ = true;
};

}  // namespace

namespace {

// The direct encoder: the bytes nlohmann's dump(-1, ' ', false, replace) writes for the DOM
// (keys in std::map order, compact separators, "\u00xx" for other control characters, UTF-8
// kept), without building the DOM: a pair line is encoded once per mirrored request. The
// structure (braces, keys, commas) is written as literals in key order.
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

void WriteResponse(LineWriter& w, const CapturedResponse& r, bool shadow) {
  // Members in key order: body|body_b64, body_truncated, error, headers, latency_us, outcome,
  // send_offset_us, status.
  if (IsValidUtf8(r.body)) {
    w.Raw("{\"body\":").String(r.body);
  } else {
    w.Raw("{\"body_b64\":").String(Base64Encode(r.body));
  }
  w.Raw(",\"body_truncated\":").Bool(r.body_truncated);
  if (!r.error.empty()) w.Raw(",\"error\":").String(r.error);
  w.Raw(",\"headers\":").Headers(r.headers);
  w.Raw(",\"latency_us\":").Number(r.latency_us);
  w.Raw(",\"outcome\":").String(r.outcome);
  if (shadow) w.Raw(",\"send_offset_us\":").Number(r.send_offset_us);
  w.Raw(",\"status\":").Number(r.status).Raw("}");
}

}  // namespace

std::string EncodePairLogLine(const PairRecord& record) {
  std::string line;
  line.reserve(512 + record.request.target.size() + record.primary.body.size() +
               record.shadow.body.size() + (record.request.body ? record.request.body->size() : 0));
  LineWriter w(&line);
  // Members in key order at every level (the DOM encoder's std::map order).
  w.Raw("{\"id\":").String(record.id);
  w.Raw(",\"mirror\":").String(record.mirror);
  w.Raw(",\"primary\":");
  WriteResponse(w, record.primary, false);
  const auto& request = record.request;
  w.Raw(",\"request\":{");
  if (request.body) w.Raw("\"body_b64\":").String(Base64Encode(*request.body)).Raw(",");
  w.Raw("\"body_truncated\":").Bool(request.body_truncated);
  w.Raw(",\"headers\":").Headers(request.headers);
  w.Raw(",\"method\":").String(request.method);
  w.Raw(",\"sha256\":").String(request.sha256);
  w.Raw(",\"size\":").Number(request.size);
  w.Raw(",\"target\":").String(request.target).Raw("}");
  w.Raw(",\"route\":").String(record.route);
  if (record.served_by_candidate) w.Raw(",\"served_by\":\"candidate\"");
  w.Raw(",\"shadow\":");
  WriteResponse(w, record.shadow, true);
  w.Raw(",\"ts_us\":").Number(record.ts_us);
  w.Raw(",\"type\":\"pair\",\"v\":").Number(kPairLogVersion).Raw("}");
  return line;
}

std::string EncodePairLogLineDom(const PairRecord& record) {
  json request = {{"method", record.request.method},
                  {"target", record.request.target},
                  {"size", record.request.size},
                  {"sha256", record.request.sha256},
                  {"headers", HeadersJson(record.request.headers)},
                  {"body_truncated", record.request.body_truncated}};
  if (record.request.body) request["body_b64"] = Base64Encode(*record.request.body);
  json line = {{"v", kPairLogVersion},
               {"type", "pair"},
               {"id", record.id},
               {"ts_us", record.ts_us},
               {"route", record.route},
               {"mirror", record.mirror},
               {"request", std::move(request)},
               {"primary", ResponseJson(record.primary, false)},
               {"shadow", ResponseJson(record.shadow, true)}};
  if (record.served_by_candidate) line["served_by"] = "candidate";
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string EncodePairLogLine(const MirrorCounters& c) {
  json line = {{"v", kPairLogVersion},   {"type", "counters"},
               {"ts_us", c.ts_us},       {"instance", c.instance},
               {"route", c.route},       {"mirror", c.mirror},
               {"requests", c.requests}, {"not_mirrored", c.not_mirrored},
               {"mirrored", c.mirrored}, {"sink_dropped", c.sink_dropped}};
  if (!c.not_captured.empty()) line["not_captured"] = c.not_captured;
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string EncodePairLogLine(const CutoverDecision& d) {
  json line = {{"v", kPairLogVersion},   {"type", "cutover"}, {"ts_us", d.ts_us},
               {"instance", d.instance}, {"route", d.route},  {"mirror", d.mirror},
               {"decision", d.decision}, {"state", d.state},  {"step", d.step},
               {"share", d.share},       {"reason", d.reason}};
  if (!d.gate.empty()) line["gate"] = d.gate;
  if (!d.metric.empty()) line["metric"] = d.metric;
  if (d.value) line["value"] = *d.value;
  if (d.bound) line["bound"] = *d.bound;
  if (!d.bound_kind.empty()) line["bound_kind"] = d.bound_kind;
  if (d.judged) line["judged"] = *d.judged;
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<PairLogEntry> DecodePairLogLine(std::string_view line, std::string* error) {
  PairRecord record;
  if (pair_log_internal::DecodePairLineFast(line, &record)) return record;
  return pair_log_internal::DecodePairLineDom(line, error);
}

std::optional<PairLogEntry> pair_log_internal::DecodePairLineDom(std::string_view line,
                                                                 std::string* error) {
  json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    if (error) *error = "invalid JSON";
    return std::nullopt;
  }
  Reader r(error);
  int version = r.Get<int>(doc, "v", "");
  if (!r.ok()) return std::nullopt;
  if (version != kPairLogVersion) {
    if (error) *error = "unsupported version " + std::to_string(version);
    return std::nullopt;
  }
  std::string type = r.Get<std::string>(doc, "type", "");
  if (type == "counters") {
    MirrorCounters c;
    c.ts_us = r.Get<int64_t>(doc, "ts_us", "");
    c.instance = r.Get<std::string>(doc, "instance", "", false);
    c.route = r.Get<std::string>(doc, "route", "");
    c.mirror = r.Get<std::string>(doc, "mirror", "");
    c.requests = r.Get<uint64_t>(doc, "requests", "", false);
    c.not_mirrored = r.Get<std::map<std::string, uint64_t>>(doc, "not_mirrored", "", false);
    c.mirrored = r.Get<std::map<std::string, uint64_t>>(doc, "mirrored", "", false);
    c.sink_dropped = r.Get<uint64_t>(doc, "sink_dropped", "", false);
    c.not_captured = r.Get<std::map<std::string, uint64_t>>(doc, "not_captured", "", false);
    if (!r.ok()) return std::nullopt;
    return c;
  }
  if (type == "cutover") {
    CutoverDecision d;
    d.ts_us = r.Get<int64_t>(doc, "ts_us", "");
    d.instance = r.Get<std::string>(doc, "instance", "", false);
    d.route = r.Get<std::string>(doc, "route", "");
    d.mirror = r.Get<std::string>(doc, "mirror", "", false);
    d.decision = r.Get<std::string>(doc, "decision", "");
    d.state = r.Get<std::string>(doc, "state", "");
    d.step = r.Get<int>(doc, "step", "");
    d.share = r.Get<double>(doc, "share", "");
    d.reason = r.Get<std::string>(doc, "reason", "", false);
    d.gate = r.Get<std::string>(doc, "gate", "", false);
    d.metric = r.Get<std::string>(doc, "metric", "", false);
    d.bound_kind = r.Get<std::string>(doc, "bound_kind", "", false);
    auto present = [&](const char* key) { return doc.contains(key) && !doc[key].is_null(); };
    if (present("value")) d.value = r.Get<double>(doc, "value", "");
    if (present("bound")) d.bound = r.Get<double>(doc, "bound", "");
    if (present("judged")) d.judged = r.Get<uint64_t>(doc, "judged", "");
    if (!r.ok()) return std::nullopt;
    return d;
  }
  if (type != "pair") {
    if (r.ok() && error) *error = "unknown record type \"" + type + "\"";
    return std::nullopt;
  }
  PairRecord p;
  p.id = r.Get<std::string>(doc, "id", "");
  p.ts_us = r.Get<int64_t>(doc, "ts_us", "");
  p.route = r.Get<std::string>(doc, "route", "");
  p.mirror = r.Get<std::string>(doc, "mirror", "", false);
  std::string served_by = r.Get<std::string>(doc, "served_by", "", false);
  if (!served_by.empty() && served_by != "primary" && served_by != "candidate") {
    r.Fail("bad value for field served_by");
  }
  p.served_by_candidate = served_by == "candidate";
  const json& request = r.Object(doc, "request", "");
  p.request.method = r.Get<std::string>(request, "method", "request.");
  p.request.target = r.Get<std::string>(request, "target", "request.");
  p.request.size = r.Get<uint64_t>(request, "size", "request.", false);
  p.request.sha256 = r.Get<std::string>(request, "sha256", "request.", false);
  p.request.headers = r.Headers(request, "request.");
  p.request.body = r.Body(request, "request.");
  p.request.body_truncated = r.Get<bool>(request, "body_truncated", "request.", false);
  p.primary = r.Response(r.Object(doc, "primary", ""), "primary.");
  p.shadow = r.Response(r.Object(doc, "shadow", ""), "shadow.");
  if (!r.ok()) return std::nullopt;
  return p;
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
