// wxlink's backend API from Java (11+, java.net.http only): a link ticket, a wxlink_code
// redeemed, a message sent with an Idempotency-Key, its status. Bodies are JSON text here;
// build and read them with your JSON library (Jackson, Gson) in production.
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

public final class WxlinkApi {
  /** A 4xx/5xx answer: {"error":{"code","message"}}. */
  public static final class WxlinkException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    public final int status;
    public final String body;

    WxlinkException(int status, String body) {
      super(status + " " + body);
      this.status = status;
      this.body = body;
    }
  }

  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final String url;
  private final String key;

  public WxlinkApi(String url, String key) {
    this.url = url.replaceAll("/$", "");
    this.key = key;
  }

  private static String path(String segment) {
    return URLEncoder.encode(segment, StandardCharsets.UTF_8).replace("+", "%20");
  }

  /** POST a link ticket: {"url","expires_at"}; `url` is what the person opens in WeChat. */
  public String linkTicket(String userId, String app, String scope, String returnTo) {
    String body = "{\"app\":\"" + app + "\",\"scope\":\"" + scope + "\""
        + (returnTo == null ? "" : ",\"return_to\":\"" + returnTo + "\"") + "}";
    return post("/api/v1/users/" + path(userId) + "/link-tickets", body, null);
  }

  /** The identity behind a wxlink_code (once): {"user_id","app","openid","unionid",...}. */
  public String redeem(String wxlinkCode) {
    return post("/api/v1/login-codes/redeem", "{\"code\":\"" + wxlinkCode + "\"}", null);
  }

  /** Queues `messageJson`; the same key with the same message answers the same message. */
  public String send(String userId, String messageJson, String idempotencyKey) {
    return post("/api/v1/users/" + path(userId) + "/messages", messageJson, idempotencyKey);
  }

  /** A message's status, msgid and history. */
  public String message(String id) {
    return call(HttpRequest.newBuilder(URI.create(url + "/api/v1/messages/" + path(id))).GET());
  }

  private String post(String route, String json, String idempotencyKey) {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + route))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(json));
    if (idempotencyKey != null) b.header("Idempotency-Key", idempotencyKey);
    return call(b);
  }

  private String call(HttpRequest.Builder request) {
    try {
      HttpResponse<String> r = http.send(
          request.header("Authorization", "Bearer " + key).timeout(Duration.ofSeconds(10)).build(),
          HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
      if (r.statusCode() >= 400) throw new WxlinkException(r.statusCode(), r.body());
      return r.body();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Against the sandbox: WXLINK_URL, WXLINK_KEY. */
  public static void main(String[] args) throws Exception {
    String base = System.getenv("WXLINK_URL");
    WxlinkApi wx = new WxlinkApi(base, System.getenv("WXLINK_KEY"));
    String ticket = wx.linkTicket("java-7", "oa", "snsapi_base", base + "/sandbox/linked");
    // The person opens the link inside (simulated) WeChat and comes back to return_to:
    // redirects followed by hand, cookies kept as sent (java.net.CookieManager would
    // rewrite them in RFC 2965 form).
    HttpClient browser = HttpClient.newHttpClient();
    HttpResponse<String> person = browser.send(HttpRequest.newBuilder(URI.create(base + "/sim/_sim/people"))
        .POST(HttpRequest.BodyPublishers.ofString("{}")).header("content-type", "application/json").build(),
        HttpResponse.BodyHandlers.ofString());
    java.util.Map<String, String> cookies = new java.util.LinkedHashMap<>();
    URI at = URI.create(WxlinkTokens.Json.string(ticket, "url"));
    for (int i = 0; i < 10 && !String.valueOf(at.getQuery()).contains("wxlink_code="); i++) {
      HttpRequest.Builder step = HttpRequest.newBuilder(at)
          .header("User-Agent", "Mozilla/5.0 MicroMessenger/8.0")
          .header("X-Wxsim-Person", WxlinkTokens.Json.string(person.body(), "id"));
      if (!cookies.isEmpty()) {
        step.header("Cookie", String.join("; ", cookies.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList()));
      }
      HttpResponse<Void> r = browser.send(step.build(), HttpResponse.BodyHandlers.discarding());
      for (String c : r.headers().allValues("set-cookie")) {
        String pair = c.split(";", 2)[0];
        cookies.put(pair.substring(0, pair.indexOf('=')), pair.substring(pair.indexOf('=') + 1));
      }
      at = at.resolve(r.headers().firstValue("location").orElseThrow());
    }
    String code = at.getQuery().replaceAll(".*wxlink_code=([^&]*).*", "$1");
    String who = wx.redeem(code);
    String message = "{\"channel\":\"template\",\"app\":\"oa\",\"template_id\":\"sandbox_order_shipped\","
        + "\"data\":{\"keyword1\":\"339208499\",\"keyword2\":\"顺丰\"}}";
    String queued = WxlinkTokens.Json.string(wx.send("java-7", message, "order-339208499-java"), "id");
    String again = WxlinkTokens.Json.string(wx.send("java-7", message, "order-339208499-java"), "id");
    int reused = 0;
    try {
      wx.redeem(code);
    } catch (WxlinkException e) {
      reused = e.status;
    }
    System.out.println(WxlinkTokens.Json.string(who, "user_id") + " " + queued.equals(again) + " "
        + WxlinkTokens.Json.string(wx.message(queued), "status").matches("queued|sending|sent") + " " + reused);
  }
}
