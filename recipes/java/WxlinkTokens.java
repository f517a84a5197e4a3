// wxlink's access token from Java (11+, java.net.http only), and where it plugs into WxJava.
//
// wxlink owns each app's token: WxJava must never fetch its own (a classic fetch cuts
// wxlink's token to 5 minutes). `current()` is GET /api/v1/apps/{app}/access-token;
// `invalidate(token)` reports a token WeChat refused (40001, 42001), replaced only if it is
// still the current one, and answers the current token.
//
// WxJava (weixin-java-mp): its service asks its WxMpConfigStorage for the token and, when
// the token is expired or WeChat refused it, fetches a new one from WeChat itself. Keep the
// storage and turn the fetch into a call to wxlink:
//
//   public class WxlinkConfigStorage extends WxMpDefaultConfigImpl {
//     private final WxlinkTokens tokens;
//     private volatile WxlinkTokens.Token held;
//     public WxlinkConfigStorage(WxlinkTokens tokens, String appid) { this.tokens = tokens; setAppId(appid); }
//     @Override public String getAccessToken() { return token().accessToken(); }
//     @Override public boolean isAccessTokenExpired() { return false; }     // wxlink renews ahead of expiry
//     @Override public void expireAccessToken() {                           // WxJava saw 40001 / 42001
//       held = tokens.invalidate(token().accessToken());
//     }
//     @Override public void updateAccessToken(String t, int expiresIn) {}  // never WeChat's: ignore
//     private WxlinkTokens.Token token() {
//       WxlinkTokens.Token t = held;
//       if (t == null || t.expiresAt() - 60 < System.currentTimeMillis() / 1000) held = t = tokens.current();
//       return t;
//     }
//   }
//
//   // and a service that asks the storage instead of WeChat when it wants a fresh token:
//   public class WxlinkMpService extends WxMpServiceHttpClientImpl {
//     @Override public String getAccessToken(boolean forceRefresh) throws WxErrorException {
//       if (forceRefresh) getWxMpConfigStorage().expireAccessToken();
//       return getWxMpConfigStorage().getAccessToken();
//     }
//   }
//
//   WxMpService wx = new WxlinkMpService();
//   wx.setWxMpConfigStorage(new WxlinkConfigStorage(new WxlinkTokens(WXLINK_URL, WXLINK_KEY, "oa"), "wx..."));
//
// (WxJava's method names as of weixin-java-mp 4.x; the jar is not part of this repository's
// build, so only this file is compiled in CI.)
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class WxlinkTokens {
  public record Token(String accessToken, long expiresAt) {}

  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final String tokenUrl;
  private final String key;

  public WxlinkTokens(String wxlinkUrl, String key, String app) {
    this.tokenUrl = wxlinkUrl.replaceAll("/$", "") + "/api/v1/apps/" + app + "/access-token";
    this.key = key;
  }

  /** The app's current token. */
  public Token current() {
    return send(HttpRequest.newBuilder(URI.create(tokenUrl)).GET());
  }

  /** Reports a token WeChat refused; the current (possibly new) token. */
  public Token invalidate(String refused) {
    String body = "{\"access_token\":\"" + refused.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}";
    return send(HttpRequest.newBuilder(URI.create(tokenUrl + "/invalidate"))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body)));
  }

  private Token send(HttpRequest.Builder request) {
    try {
      HttpResponse<String> r = http.send(
          request.header("Authorization", "Bearer " + key).timeout(Duration.ofSeconds(10)).build(),
          HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        throw new IllegalStateException("wxlink answered " + r.statusCode() + ": " + r.body());
      }
      // {"access_token":"...","expires_at":1767225600}; use your JSON library in production.
      return new Token(Json.string(r.body(), "access_token"), Long.parseLong(Json.number(r.body(), "expires_at")));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Just enough JSON for these answers (flat objects, no escapes in the values read). */
  static final class Json {
    static String string(String json, String field) {
      Matcher m = Pattern.compile("\"" + field + "\"\\s*:\\s*\"([^\"]*)\"").matcher(json);
      if (!m.find()) throw new IllegalStateException("no " + field + " in " + json);
      return m.group(1);
    }

    static String number(String json, String field) {
      Matcher m = Pattern.compile("\"" + field + "\"\\s*:\\s*(-?\\d+)").matcher(json);
      if (!m.find()) throw new IllegalStateException("no " + field + " in " + json);
      return m.group(1);
    }
  }

  /** Against the sandbox: WXLINK_URL, WXLINK_KEY. */
  public static void main(String[] args) {
    WxlinkTokens tokens = new WxlinkTokens(System.getenv("WXLINK_URL"), System.getenv("WXLINK_KEY"), "oa");
    Token first = tokens.current();
    Token second = tokens.invalidate(first.accessToken());
    Token now = tokens.current();
    System.out.println(!first.accessToken().equals(second.accessToken()) + " " + second.accessToken().equals(now.accessToken()));
  }
}
