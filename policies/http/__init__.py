"""The team's HTTP inference protocol, both ways.

Rooms: ``protocol`` (routes, payloads, answers and faults, as the team's server and robot
client define them), ``client`` (a policy driven over the protocol as the robot client does) and
``serve`` (``python -m policies.http.serve``: any of our policies behind the protocol), ``guard``
(what the server refuses before a request reaches the policy, and its limits), ``deadline`` (a
total deadline for one client request) and ``sessions`` (our extension: one history per
``X-Session-Id``, concurrent sessions batched into one ``act_batch``).
"""
