// config.properties as java.util.Properties.load reads it (the cases of its documentation; the
// expected maps are what OpenJDK 17's Properties.load gave for the same bytes).
#include "model_server/ts_properties.h"

#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace sg::serve {
namespace {

using Map = std::map<std::string, std::string>;

Map Parse(std::string_view text) {
  Properties p;
  std::string error;
  EXPECT_TRUE(ParseProperties(text, &p, &error)) << error;
  Map out;
  for (const auto& e : p.entries) out[e.key] = e.value;
  return out;
}

TEST(TsPropertiesTest, SeparatorsAndBlanks) {
  auto p = Parse(
      "a=1\n"
      "b: 2\n"
      "c 3\n"
      "  d   =   4  \n"
      "e\t:\tfive six\n"
      "f==7\n"
      "g =: 8\n"
      "h\n"
      "i=\n");
  EXPECT_EQ(p, (Map{
                   {"a", "1"},
                   {"b", "2"},
                   {"c", "3"},
                   {"d", "4  "},  // trailing blanks belong to the value, as in Java
                   {"e", "five six"},
                   {"f", "=7"},  // one separator only
                   {"g", ": 8"},
                   {"h", ""},
                   {"i", ""},
               }));
}

TEST(TsPropertiesTest, CommentsAndBlankLines) {
  auto p = Parse(
      "# a comment\n"
      "   ! another, indented\n"
      "\n"
      "   \n"
      "a=1 # not a comment\n"
      "# a comment ending in a backslash does not continue \\\n"
      "b=2\n");
  EXPECT_EQ(p, (Map{
                   {"a", "1 # not a comment"},
                   {"b", "2"},
               }));
}

TEST(TsPropertiesTest, ContinuationsDropTheNextLinesLeadingBlanks) {
  auto p = Parse(
      "fruits = apple, banana, \\\n"
      "         pear, \\\n"
      "\t cantaloupe\n"
      "even=ends in one backslash\\\\\n"
      "next=3\n"
      "crlf=a\\\r\n  b\r\n"
      "cr=c\\\r  d\r"
      "last=e\\");
  EXPECT_EQ(p, (Map{
                   {"fruits", "apple, banana, pear, cantaloupe"},
                   {"even", "ends in one backslash\\"},
                   {"next", "3"},
                   {"crlf", "ab"},
                   {"cr", "cd"},
                   {"last", "e"},  // a backslash at the end of the file is dropped
               }));
}

TEST(TsPropertiesTest, Escapes) {
  auto p = Parse(
      "key\\ with\\ spaces = v\n"
      "k\\=eq\\:colon=v2\n"
      "tabs=a\\tb\\nc\\rd\\fe\n"
      "unicode=\\u0041\\u00e9\\u20AC\n"
      "other=\\q\\\\\\#\n");
  EXPECT_EQ(p, (Map{
                   {"key with spaces", "v"},
                   {"k=eq:colon", "v2"},
                   {"tabs", "a\tb\nc\rd\fe"},
                   {"unicode", "A\xC3\xA9\xE2\x82\xAC"},
                   {"other", "q\\#"},
               }));
}

TEST(TsPropertiesTest, LastRepeatedKeyWinsAndLinesAreKept) {
  Properties p;
  std::string error;
  ASSERT_TRUE(ParseProperties("a=1\n# c\nb=2\\\n  more\na=3\n", &p, &error)) << error;
  ASSERT_EQ(p.entries.size(), 3u);
  EXPECT_EQ(p.Find("a")->value, "3");
  EXPECT_EQ(p.Find("a")->line, 5);
  EXPECT_EQ(p.Find("b")->line, 3);
  EXPECT_EQ(p.Find("missing"), nullptr);
}

TEST(TsPropertiesTest, MalformedUnicodeEscapeNamesTheLine) {
  Properties p;
  std::string error;
  EXPECT_FALSE(ParseProperties("a=1\nb=\\u12g4\n", &p, &error));
  EXPECT_EQ(error, "line 2: malformed \\uxxxx escape (four hex digits expected)");
}

// TorchServe's own example (docs/configuration.md, "Config model"): JSON over continued lines.
TEST(TsPropertiesTest, TorchServesModelsExampleIsJson) {
  auto p = Parse(
      "models={\\\n"
      "  \"noop\": {\\\n"
      "    \"1.0\": {\\\n"
      "        \"defaultVersion\": true,\\\n"
      "        \"marName\": \"noop.mar\",\\\n"
      "        \"minWorkers\": 1,\\\n"
      "        \"batchSize\": 4\\\n"
      "    }\\\n"
      "  }\\\n"
      "}\n"
      "inference_address=http://127.0.0.1:8080\n");
  auto models = nlohmann::json::parse(p["models"]);
  EXPECT_EQ(models["noop"]["1.0"]["marName"], "noop.mar");
  EXPECT_EQ(models["noop"]["1.0"]["batchSize"], 4);
  EXPECT_EQ(p["inference_address"], "http://127.0.0.1:8080");
}

}  // namespace
}  // namespace sg::serve
