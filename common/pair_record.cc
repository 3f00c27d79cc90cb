#include "common/pair_record.h"

#include <openssl/evp.h>

#include <array>

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

std::string EncodePairLogLine(const PairRecord& record) {
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
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string EncodePairLogLine(const MirrorCounters& c) {
  json line = {{"v", kPairLogVersion},   {"type", "counters"},
               {"ts_us", c.ts_us},       {"instance", c.instance},
               {"route", c.route},       {"mirror", c.mirror},
               {"requests", c.requests}, {"not_mirrored", c.not_mirrored},
               {"mirrored", c.mirrored}, {"sink_dropped", c.sink_dropped}};
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
    if (!r.ok()) return std::nullopt;
    return c;
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

// Canonical base64 (alphabet characters, then at most two '='), as the encoders write it;
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
  if (auto decoded = DecodeCanonicalBase64(text)) return decoded;
  // Everything else keeps OpenSSL's lenient reading (surrounding whitespace, '=' inside).
  std::string out(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop one per '='.
  size_t padding = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++padding;
  out.resize(static_cast<size_t>(n) - std::min<size_t>(padding, 2));
  return out;
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
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
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
