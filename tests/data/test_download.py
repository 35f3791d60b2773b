"""download_reds against a loopback HTTP server serving small zips (Range, cut-offs, no net)."""

import http.server
import io
import os
import re
import socket
import threading
import zipfile

import pytest

from edvr import cli
from edvr.data import download_reds


def make_zip(part):
    """A small REDS-like zip: ``train/<part>/000/0000000i.png`` with incompressible bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as zf:
        for i in range(3):
            zf.writestr(f'train/{part}/000/%08d.png' % i, os.urandom(40000))
    return buffer.getvalue()


class ZipServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 with Range support.

    ``cut_after`` makes the next ``cut_count`` responses stop after that many body bytes
    (announcing the full length), like a dropped connection; ``ignore_range`` answers 200.
    Records every request's Range header and the body bytes sent.
    """

    def __init__(self, files):
        self.files, self.requests, self.sent = files, [], 0
        self.cut_after, self.cut_count, self.ignore_range = None, 0, False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit('/', 1)[-1]
                server.requests.append((name, self.headers.get('Range')))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                match = re.match(r'bytes=(\d+)-$', self.headers.get('Range') or '')
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header('Content-Range', f'bytes */{len(data)}')
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                if server.cut_count:
                    server.cut_count -= 1
                    body = body[: server.cut_after]
                # Counted before writing: the client may finish reading (and the test
                # assert) before this thread runs again after the write.
                server.sent += len(body)
                self.wfile.write(body)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/REDS/'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    files = {f'{p}.zip': make_zip(p) for p in ('train_sharp', 'train_sharp_bicubic')}
    with ZipServer(files) as s:
        yield s


def test_downloads_and_unzips_parts(tmp_path, server, monkeypatch):
    root = str(tmp_path / 'reds')
    monkeypatch.setenv(download_reds.BASE_URL_ENV, server.url)
    assert (
        download_reds.main(
            ['--root_dir', root, '--train_sharp', '--train_sharp_bicubic', '--timeout', '5']
        )
        == 0
    )
    with zipfile.ZipFile(io.BytesIO(server.files['train_sharp.zip'])) as zf:
        expected = zf.read('train/train_sharp/000/00000002.png')
    with open(os.path.join(root, 'train', 'train_sharp', '000', '00000002.png'), 'rb') as f:
        assert f.read() == expected
    assert os.path.isdir(os.path.join(root, 'train', 'train_sharp_bicubic', '000'))
    assert not os.path.exists(os.path.join(root, 'train_sharp.zip'))  # removed after unzip
    requests = len(server.requests)
    assert download_reds.main(['--root_dir', root, '--train_sharp', '--base_url', server.url]) == 0
    assert len(server.requests) == requests  # finished parts are not fetched again


def test_resumes_from_a_partial_file(tmp_path, server):
    data = server.files['train_sharp.zip']
    destination = str(tmp_path / 'train_sharp.zip')
    with open(destination + '.part', 'wb') as f:
        f.write(data[:50000])
    download_reds.download(
        server.url + 'train_sharp.zip', destination, retries=0, timeout=5, progress=False
    )
    with open(destination, 'rb') as f:
        assert f.read() == data
    assert server.requests == [('train_sharp.zip', 'bytes=50000-')]
    assert server.sent == len(data) - 50000


def test_interrupted_transfer_keeps_part_and_resumes(tmp_path, server):
    data = server.files['train_sharp.zip']
    destination = str(tmp_path / 'train_sharp.zip')
    url = server.url + 'train_sharp.zip'
    server.cut_after, server.cut_count = 30000, 1
    with pytest.raises(download_reds.TransferInterrupted, match='run the same command again'):
        download_reds.download(url, destination, retries=0, timeout=5, progress=False)
    assert os.path.getsize(destination + '.part') == 30000
    download_reds.download(url, destination, retries=0, timeout=5, progress=False)
    with open(destination, 'rb') as f:
        assert f.read() == data
    assert server.requests[-1] == ('train_sharp.zip', 'bytes=30000-')
    # With retries, two cut-offs in a row are absorbed in one call.
    os.remove(destination)
    server.cut_after, server.cut_count = 20000, 2
    download_reds.download(url, destination, retries=2, timeout=5, progress=False)
    with open(destination, 'rb') as f:
        assert f.read() == data


def test_server_ignoring_range_restarts_cleanly(tmp_path, server):
    data = server.files['train_sharp.zip']
    destination = str(tmp_path / 'train_sharp.zip')
    with open(destination + '.part', 'wb') as f:
        f.write(b'x' * 1000)  # would corrupt the file if appended to
    server.ignore_range = True
    download_reds.download(server.url + 'train_sharp.zip', destination, timeout=5, progress=False)
    with open(destination, 'rb') as f:
        assert f.read() == data


def test_unreachable_network_gives_clear_error(tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    code = download_reds.main(
        [
            '--root_dir',
            str(tmp_path),
            '--val_sharp',
            '--base_url',
            f'http://127.0.0.1:{port}/REDS',
            '--timeout',
            '2',
        ]
    )
    assert code == cli.EXIT_DOWNLOAD
    assert re.search(
        rf'cannot reach http://127.0.0.1:{port}/REDS/val_sharp.zip .*check the '
        r'network connection, or point --base_url',
        capsys.readouterr().err,
    )


def test_missing_file_and_bad_zip(tmp_path, server):
    with pytest.raises(download_reds.DownloadError, match='val_sharp.zip: HTTP 404'):
        download_reds.download(
            server.url + 'val_sharp.zip', str(tmp_path / 'v.zip'), timeout=5, progress=False
        )
    bad = tmp_path / 'bad.zip'
    bad.write_bytes(b'not a zip')
    with pytest.raises(download_reds.DownloadError, match='not a valid zip file'):
        download_reds.unzip(str(bad), str(tmp_path))
