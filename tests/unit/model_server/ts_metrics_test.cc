// TorchServe's metrics text (ts_metrics.h): its exact lines, Java's doubles, the name[] filter.
#include "model_server/ts_metrics.h"

#include <gtest/gtest.h>

namespace sg::serve {
namespace {

TEST(TorchServeMetricsTest, ValuesAreWrittenAsJavaDoubles) {
  EXPECT_EQ(JavaDouble(8), "8.0");
  EXPECT_EQ(JavaDouble(0), "0.0");
  EXPECT_EQ(JavaDouble(290371.129), "290371.129");
  EXPECT_EQ(JavaDouble(0.5), "0.5");
}

// The lines as TorchServe's metrics API writes them (docs/metrics_api.md of pytorch/serve),
// which TorchServe's Postman collections match with a regex.
TEST(TorchServeMetricsTest, RendersTorchServesLines) {
  TorchServeMetrics metrics("host-1");
  for (int status : {200, 202, 404, 503, 302}) metrics.CountResponse(status);
  metrics.CountRequest("resnet18", "default");
  metrics.CountRequest("resnet18", "default");
  metrics.CountRequest("resnet18", "1.0");
  metrics.AddLatency("resnet18", "default", 1500, 25.5);
  std::string text = metrics.Render(nullptr);
  EXPECT_NE(text.find("# HELP Requests2XX Torchserve prometheus counter metric with unit: Count\n"
                      "# TYPE Requests2XX counter\n"
                      "Requests2XX{Level=\"Host\",Hostname=\"host-1\",} 2.0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Requests4XX{Level=\"Host\",Hostname=\"host-1\",} 1.0\n"), std::string::npos);
  EXPECT_NE(text.find("Requests5XX{Level=\"Host\",Hostname=\"host-1\",} 1.0\n"), std::string::npos);
  EXPECT_NE(text.find("ts_inference_requests_total{model_name=\"resnet18\",model_version="
                      "\"default\",hostname=\"host-1\",} 2.0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ts_inference_requests_total{model_name=\"resnet18\",model_version="
                      "\"1.0\",hostname=\"host-1\",} 1.0\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE ts_inference_latency_microseconds counter\n"), std::string::npos);
  EXPECT_NE(text.find("ts_inference_latency_microseconds{model_name=\"resnet18\",model_version="
                      "\"default\",hostname=\"host-1\",} 1500.0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ts_queue_latency_microseconds{model_name=\"resnet18\",model_version="
                      "\"default\",hostname=\"host-1\",} 25.5\n"),
            std::string::npos);
}

TEST(TorchServeMetricsTest, NameFilterKeepsOnlyTheNamedFamilies) {
  TorchServeMetrics metrics("h");
  std::set<std::string> names = {"Requests4XX", "sg_b"};
  std::string text = metrics.Render(&names);
  EXPECT_EQ(text,
            "# HELP Requests4XX Torchserve prometheus counter metric with unit: Count\n"
            "# TYPE Requests4XX counter\n"
            "Requests4XX{Level=\"Host\",Hostname=\"h\",} 0.0\n");
  std::string own =
      "# HELP sg_a A.\n# TYPE sg_a gauge\nsg_a 1\n"
      "# HELP sg_b B.\n# TYPE sg_b counter\nsg_b{x=\"1\"} 2\nsg_b{x=\"2\"} 3\n"
      "# HELP sg_c C.\n# TYPE sg_c gauge\nsg_c 4\n";
  EXPECT_EQ(FilterMetricFamilies(own, names),
            "# HELP sg_b B.\n# TYPE sg_b counter\nsg_b{x=\"1\"} 2\nsg_b{x=\"2\"} 3\n");
  EXPECT_EQ(FilterMetricFamilies(own, {}), "");
}

}  // namespace
}  // namespace sg::serve
