"""The benchmark behind ``python bench/run.py``: aiouploader against its ceiling and the usual workaround.

- ``cli``: the command line and the run's life (workspace, deadline, exit status);
- ``configurations``: what (a) to (m) are, and the config file of each aiouploader server;
- ``workspace``: the run's files on tmpfs, its environment and its S3 server;
- ``processes``: starting and stopping every process, waiting for servers;
- ``targets``: one configuration's fresh server (or (a)'s client process);
- ``uploads``: the clients: ``curl -T``, a streamed PUT, many small PUTs;
- ``procfs``: CPU, disk writes and peak RSS from ``/proc``;
- ``scenarios``: single, concurrent, small and flat-memory measurements;
- ``report`` and ``machine``: the tables, the notes, the versions;
- ``direct``, ``baseline_app`` and ``s3api_client``: configurations (a) and (d)/(i), and (j)'s client, run as
  processes of their own;
- ``tus``: installing ``tus-node/`` (npm), the tus Node server of (l) and the tus client of (k) and (l).
"""
