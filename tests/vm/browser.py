"""In the VM: headless Chromium opens the camera and lists the devices; prints what it saw.

A page served on localhost calls getUserMedia (the fake-UI flag accepts the permission prompt),
then enumerateDevices, and posts the result back here.
"""

import http.server
import json
import subprocess
import sys
import threading

PAGE = b"""<!doctype html><html><body><script>
(async () => {
  const r = {};
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: true});
    r.track = stream.getVideoTracks()[0].label;
    r.devices = (await navigator.mediaDevices.enumerateDevices()).map(d => d.kind + ":" + d.label);
  } catch (e) { r.error = e.name + ": " + e.message; }
  await fetch("/result", {method: "POST", body: JSON.stringify(r)});
})();
</script></body></html>"""
result = {}
done = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(PAGE)

    def do_POST(self):
        result.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()
        done.set()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/"
browser = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--use-fake-ui-for-media-stream", "--user-data-dir=/tmp/chromium-profile", url],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    done.wait(420)  # Chromium starts slowly in the emulated VM
finally:
    browser.kill()
print(json.dumps(result, indent=1))
for line in result.get("devices", []):
    print(line)
sys.exit(0 if any(d.startswith("videoinput:AvatarCam") for d in result.get("devices", [])) else 1)
