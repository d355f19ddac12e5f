"""What a number means: the result and published-curve file schemas, the files a results folder holds, the
metrics formulas (PSNR, MS-SSIM, bpp), the checks that a result agrees with its per-image CSV and with the code
that made it, BD-rate and BD-PSNR, which results may be ranked, and `bench submit`."""
