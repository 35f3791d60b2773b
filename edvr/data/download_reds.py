"""Downloads and unzips parts of REDS (the seed's download step), resumably.

    python -m edvr.data.download_reds --root_dir /data/REDS_zip --train_sharp \\
        --train_sharp_bicubic --val_sharp --val_sharp_bicubic

Each part is fetched to ``ROOT/<part>.zip.part`` with HTTP Range requests (an interrupted
download continues where it stopped, on retry or on the next run), renamed when complete,
then unzipped into ROOT. The base URL comes from ``--base_url``, else the environment
variable ``EDVR_REDS_BASE_URL``, else the REDS authors' server. Then run
``python -m edvr.data.regroup_reds --src ROOT --dst DATA``.
"""

import http.client
import os
import re
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

from edvr import cli

PARTS = ('train_sharp', 'train_sharp_bicubic', 'val_sharp', 'val_sharp_bicubic')
DEFAULT_BASE_URL = 'http://data.cv.snu.ac.kr:8008/webdav/dataset/REDS/'
BASE_URL_ENV = 'EDVR_REDS_BASE_URL'
CHUNK_BYTES = 1 << 20
CONTENT_RANGE = re.compile(r'bytes (\d+)-(\d+)/(\d+|\*)')


class DownloadError(RuntimeError):
    """A download failed; the message says what to do next."""

    exit_code = 5  # edvr.cli.EXIT_DOWNLOAD


class TransferInterrupted(DownloadError):
    """The transfer stopped part way; the .part file is kept and a retry resumes it."""


def base_url(flag_value=None):
    """The base URL: the flag, else $EDVR_REDS_BASE_URL, else the default; ends with '/'."""
    url = flag_value or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url if url.endswith('/') else url + '/'


def _open(url, offset, timeout):
    headers = {'Range': f'bytes={offset}-'} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return None  # nothing left past the offset: the .part file is complete
        raise DownloadError(f'{url}: HTTP {e.code} {e.reason}') from e
    except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
        reason = getattr(e, 'reason', e)
        raise DownloadError(
            f'cannot reach {url} ({reason}); check the network connection, or point '
            f'--base_url or ${BASE_URL_ENV} at a mirror of the REDS zip files'
        ) from e


def _expected_total(response, offset, url):
    """Total file size from the response headers (None if unknown), and where writing starts."""
    if response.status == 206:
        match = CONTENT_RANGE.match(response.headers.get('Content-Range', ''))
        if not match or int(match.group(1)) != offset:
            raise DownloadError(
                f'{url}: server answered Range {offset}- with Content-Range '
                f'{response.headers.get("Content-Range")!r}'
            )
        return (None if match.group(3) == '*' else int(match.group(3))), offset
    length = response.headers.get('Content-Length')
    return (int(length) if length is not None else None), 0  # Range ignored: start over


def fetch(url, destination, timeout=30.0, progress=True):
    """Downloads ``url`` to ``destination`` once, resuming from ``destination + '.part'``.

    Raises DownloadError (keeping the .part file) when the network fails or the transfer is
    cut short; calling again resumes.
    """
    part = destination + '.part'
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    response = _open(url, offset, timeout)
    if response is None:
        os.replace(part, destination)
        return destination
    with response:
        total, offset = _expected_total(response, offset, url)
        with open(part, 'r+b' if offset else 'wb') as f, tqdm(
            total=total,
            initial=offset,
            unit='B',
            unit_scale=True,
            unit_divisor=1024,
            desc=os.path.basename(destination),
            disable=not progress,
        ) as bar:
            f.seek(offset)
            f.truncate()
            try:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise TransferInterrupted(
                    f'{url}: transfer interrupted at {f.tell()} of {total} bytes ({e}); run '
                    f'the same command again to resume'
                ) from e
            written = f.tell()
    if total is not None and written != total:
        raise TransferInterrupted(
            f'{url}: got {written} of {total} bytes; run the same command again to resume'
        )
    os.replace(part, destination)
    return destination


def download(url, destination, retries=3, timeout=30.0, progress=True):
    """``fetch`` with up to ``retries`` resumed retries after an interrupted transfer."""
    for attempt in range(retries + 1):
        try:
            return fetch(url, destination, timeout, progress)
        except TransferInterrupted as e:
            if attempt == retries:
                raise
            print(f'{e}; retrying ({attempt + 1}/{retries})', file=sys.stderr)
    return destination


def unzip(archive, root_dir):
    """Extracts ``archive`` into ``root_dir``, refusing members that would land outside."""
    root = os.path.realpath(root_dir)
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = os.path.realpath(os.path.join(root, member))
                if os.path.commonpath([root, target]) != root:
                    raise DownloadError(
                        f'{archive}: member {member!r} would be extracted outside {root_dir}'
                    )
            zf.extractall(root)
    except zipfile.BadZipFile as e:
        raise DownloadError(
            f'{archive}: not a valid zip file ({e}); delete it and download again'
        ) from e


def fetch_part(part, root_dir, url_base, keep_zip=False, retries=3, timeout=30.0, progress=True):
    """Downloads and unzips one REDS part; skips it when a previous run finished it."""
    marker = os.path.join(root_dir, f'.{part}.extracted')
    if os.path.exists(marker):
        print(f'{part}: already downloaded and extracted in {root_dir}')
        return
    archive = os.path.join(root_dir, f'{part}.zip')
    if not os.path.exists(archive):
        download(urllib.parse.urljoin(url_base, f'{part}.zip'), archive, retries, timeout, progress)
    unzip(archive, root_dir)
    with open(marker, 'w'):
        pass
    if not keep_zip:
        os.remove(archive)
    print(f'{part}: extracted into {root_dir}')


def make_parser():
    parser = cli.tool_parser('data.download_reds', __doc__.split('\n\n')[0], threads=False)
    parser.add_argument('--root_dir', required=True, help='where zips go and are unzipped')
    for part in PARTS:
        parser.add_argument(f'--{part}', action='store_true', help=f'fetch {part}.zip')
    parser.add_argument(
        '--base_url',
        default=None,
        help=f'URL of the folder holding the zips (default ${BASE_URL_ENV} or {DEFAULT_BASE_URL})',
    )
    parser.add_argument('--retries', type=int, default=3, help='resumed retries per file')
    parser.add_argument('--timeout', type=float, default=30.0, help='socket timeout, seconds')
    parser.add_argument('--keep_zip', action='store_true', help='keep zips after unzipping')
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    parts = [p for p in PARTS if getattr(args, p)]
    if not parts:
        parser.error(f'choose at least one of {", ".join("--" + p for p in PARTS)}')

    def run(args):
        os.makedirs(args.root_dir, exist_ok=True)
        url_base = base_url(args.base_url)
        for part in parts:
            fetch_part(part, args.root_dir, url_base, args.keep_zip, args.retries, args.timeout)
        print(f'done; next: python -m edvr.data.regroup_reds --src {args.root_dir} --dst DATA_DIR')

    return cli.run('data.download_reds', run, args)


if __name__ == '__main__':
    sys.exit(main())
