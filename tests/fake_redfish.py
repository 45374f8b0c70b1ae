"""A fake Redfish BMC on 127.0.0.1 (http.server in a thread, ephemeral port) for the node meter tests.

    with FakeRedfish(watts=250.0, kind="Power") as bmc:      # or "EnvironmentMetrics", "PowerSubsystem"
        bmc.url            # http://127.0.0.1:PORT
        bmc.watts = 180.0  # the next GET reads this
        bmc.requests       # paths asked for

Basic authentication with user `admin` / password `s3cret`; anything else gets 401.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, PASSWORD = "admin", "s3cret"
CHASSIS = "/redfish/v1/Chassis/1"


class FakeRedfish:
    def __init__(self, watts: float = 250.0, kind: str = "Power"):
        self.watts = watts
        self.kind = kind
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                fake.requests.append(self.path)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"error": "unauthorized"})
                body = fake.resource(self.path.rstrip("/"))
                self._send(404, {"error": "not found"}) if body is None else self._send(200, body)

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def resource(self, path: str):
        if path == "/redfish/v1/Chassis":
            return {"Members": [{"@odata.id": CHASSIS}]}
        if path == CHASSIS:
            return {"Id": "1", self.kind: {"@odata.id": f"{CHASSIS}/{self.kind}"}}
        if path == f"{CHASSIS}/Power" and self.kind == "Power":
            return {"PowerControl": [{"PowerConsumedWatts": self.watts}]}
        if path == f"{CHASSIS}/EnvironmentMetrics" and self.kind == "EnvironmentMetrics":
            return {"PowerWatts": {"Reading": self.watts}}
        if self.kind == "PowerSubsystem":  # two supplies sharing the load 60/40
            sub = f"{CHASSIS}/PowerSubsystem"
            psus = [f"{sub}/PowerSupplies/{n}" for n in (0, 1)]
            pages = {sub: {"PowerSupplies": {"@odata.id": f"{sub}/PowerSupplies"}},
                     f"{sub}/PowerSupplies": {"Members": [{"@odata.id": p} for p in psus]},
                     **{p: {"Metrics": {"@odata.id": f"{p}/Metrics"}} for p in psus},
                     f"{psus[0]}/Metrics": {"InputPowerWatts": {"Reading": self.watts * 0.6}},
                     f"{psus[1]}/Metrics": {"InputPowerWatts": {"Reading": self.watts * 0.4}}}
            return pages.get(path)
        return None

    def __enter__(self) -> "FakeRedfish":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
