"""Temporal windows: which frames feed the model for a given centre frame.

Validation and inference pad at clip ends the way BasicSR's REDS test does
(``basicsr.data.data_util.generate_frame_indices``); training keeps windows inside the clip.
"""

# The one list of temporal paddings (data.val_padding, edvr.infer --padding); the default first.
PADDINGS = ('reflection_circle', 'replicate', 'reflection', 'circle')


def min_clip_frames(num_frames, padding):
    """The fewest frames a clip needs for every centre to have a ``num_frames`` window with
    ``padding``: ``reflection`` mirrors about the end frame (half the window past it), the
    circular ones take frames from the far side of the window."""
    return {
        'replicate': 1,
        'reflection': num_frames // 2 + 1,
        'reflection_circle': num_frames,
        'circle': num_frames,
    }[padding]


def window_indices(center, nframes, num_frames, padding='reflection_circle'):
    """Frame indices of the ``num_frames`` window around ``center`` in a clip of ``nframes``.

    Indices outside ``[0, nframes)`` are replaced according to ``padding``:
    ``replicate`` (clamp), ``reflection`` (mirror about the end frame), ``reflection_circle``
    (take the frames from the far side of the window, counting back), ``circle`` (wrap within
    the window). E.g. centre 0 of a 100-frame clip, 5 frames, reflection_circle: [4, 3, 0, 1, 2].
    """
    if num_frames % 2 != 1 or num_frames < 1:
        raise ValueError(f'num_frames must be odd and positive, got {num_frames}')
    if padding not in PADDINGS:
        raise ValueError(f'padding must be one of {PADDINGS}, got {padding!r}')
    if not 0 <= center < nframes:
        raise ValueError(f'center must be in [0, {nframes}), got {center}')
    last = nframes - 1
    half = num_frames // 2
    indices = []
    for i in range(center - half, center + half + 1):
        if i < 0:
            pad = {
                'replicate': 0,
                'reflection': -i,
                'reflection_circle': center + half - i,
                'circle': num_frames + i,
            }[padding]
        elif i > last:
            pad = {
                'replicate': last,
                'reflection': last * 2 - i,
                'reflection_circle': (center - half) - (i - last),
                'circle': i - num_frames,
            }[padding]
        else:
            pad = i
        if not 0 <= pad < nframes:
            raise ValueError(
                f'clip of {nframes} frames is too short for a {num_frames}-frame '
                f'window with {padding!r} padding (centre {center} needs frame {pad})'
            )
        indices.append(pad)
    return indices


def training_centers(nframes, num_frames):
    """Centre indices whose whole ``num_frames`` window lies inside a clip of ``nframes``."""
    half = num_frames // 2
    return list(range(half, nframes - half))
